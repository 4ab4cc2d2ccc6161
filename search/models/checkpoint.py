"""A checkpoint folder read part by part: its config, its processor, and any of its tensors
straight from its safetensors files.

A part is built with its parameters on the meta device (no memory, no initialisation), then
each parameter is read from the file, converted to the precision it runs in and put in
place, one at a time (`materialize`): a part costs its own size in its own precision, never
a float32 copy of the whole checkpoint first. A hub id is resolved to its snapshot in the
local Hugging Face cache (downloaded when missing and the hub is reachable).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import Blip2Config, Blip2Processor
from transformers.initialization import no_init_weights

from ..errors import ModelNotAvailable
from ..presets import ModelSource
from .loading import first_line
from .tensorfile import TensorFile

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]  # what a part, its tokenizer and processor need


class Checkpoint:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.config = Blip2Config.from_pretrained(folder)
        self._file_of = _tensor_files(folder)  # tensor name -> the safetensors file that holds it
        self._files: dict[Path, TensorFile] = {}

    @classmethod
    def locate(cls, location: str, source: ModelSource) -> Checkpoint:
        """The checkpoint at a local folder, or a hub id's snapshot (fetched when missing)."""
        try:
            if source.local:
                return cls(Path(location))
            from huggingface_hub import snapshot_download, try_to_load_from_cache

            cached = isinstance(try_to_load_from_cache(location, "config.json"), str)
            return cls(Path(snapshot_download(location, allow_patterns=FILES, local_files_only=cached)))
        except ModelNotAvailable:
            raise
        except Exception as exc:  # unreadable config or weights, a repository that is not there
            raise ModelNotAvailable(f"cannot load the checkpoint in {location}: {first_line(exc)}") from None

    def processor(self) -> Blip2Processor:
        return Blip2Processor.from_pretrained(self.folder)

    @property
    def identity(self) -> str:
        """What a cache of weights derived from this checkpoint keys on: each weight file's
        content hash where the hub's cache names its blob by it (a snapshot's files link
        to them), else its name, size and modification time."""
        digest = hashlib.blake2b(digest_size=12)
        for path in sorted(set(self._file_of.values())):
            stat = path.stat()
            digest.update(f"{path.resolve().name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        return digest.hexdigest()

    def names(self, prefix: str) -> list[str]:
        return sorted(name for name in self._file_of if name.startswith(prefix))

    def read(self, name: str) -> torch.Tensor:
        return self._file(name).read(name)

    def _file(self, name: str) -> TensorFile:
        path = self._file_of[name]
        if path not in self._files:
            self._files[path] = TensorFile(path)
        return self._files[path]

    def fingerprint(self, prefix: str, skip: str) -> str:
        """A hash of every tensor under `prefix` but those under `prefix + skip`, read one at a
        time: whether two checkpoints hold the same encoder, without building either."""
        digest = hashlib.blake2b(digest_size=16)
        for name in self.names(prefix):
            if name.startswith(prefix + skip):
                continue
            stored = self._file(name)
            digest.update(name.removeprefix(prefix).encode())
            digest.update(stored.entries[name]["dtype"].encode())
            digest.update(stored.raw(name))
        return digest.hexdigest()

    def materialize(self, module: nn.Module, prefix: str, dtype: Callable[[str], torch.dtype]) -> None:
        """Read every parameter of `module` still on the meta device from `prefix` + its name,
        in `dtype(name)`; a parameter shared under several names (tied weights) is read once.
        A parameter the checkpoint lacks is refused, never left random."""
        shared: dict[int, list[str]] = {}
        for name, param in module.named_parameters(remove_duplicate=False):
            if param.device.type == "meta":
                shared.setdefault(id(param), []).append(name)
        missing = []
        for names in shared.values():
            found = next((prefix + name for name in names if prefix + name in self._file_of), None)
            if found is None:
                missing.append(prefix + names[0])
                continue
            value = nn.Parameter(self.read(found).to(dtype(names[0])), requires_grad=False)
            for name in names:
                owner, _, attribute = name.rpartition(".")
                setattr(module.get_submodule(owner), attribute, value)
        if missing:
            raise ModelNotAvailable(f"the checkpoint in {self.folder} lacks {len(missing)} weights of a part "
                                    f"(first: {missing[0]}); it is not a BLIP-2 checkpoint of this layout")


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Build modules whose parameters live on the meta device, uninitialised, while their
    buffers (position ids and the like, never in a checkpoint) are made as usual."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = on_meta
    try:
        with no_init_weights():
            yield
    finally:
        nn.Module.register_parameter = register


def _tensor_files(folder: Path) -> dict[str, Path]:
    index = folder / INDEX
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: folder / file for name, file in weight_map.items()}
    single = folder / SINGLE
    if not single.is_file():
        raise ModelNotAvailable(f"the checkpoint in {folder} has no safetensors weights "
                                f"({SINGLE} or {INDEX})")
    return dict.fromkeys(TensorFile(single).keys(), single)

