"""int8 stages kept on disk after their first quantization, so a later load reads int8
weights instead of quantizing again.

One safetensors file a stage (the image encoder, the language model), under a key made of
the checkpoint's identity (its weight files' names, sizes and times), the precision plan,
the quantizer, the CPU and torch's version: a change to any of them makes a new entry.
Each quantized Linear layer is stored as its int8 weight, scales, zero points and bias; on
load the layers are rebuilt from them and the rest of the stage (LayerNorms, embeddings)
is read from the checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from .precision import FullRangeLinear, PerTokenLinear, WeightInt8Linear, full_range_is_exact
from .tensorfile import TensorFile, write

# int8 arithmetic (per token, per tensor on 8 or 7 bits); "weights": WeightInt8Linear
KINDS = {"token": PerTokenLinear, "full": FullRangeLinear, "dynamic": DynamicLinear}


def cache_key(*parts: str) -> str:
    """A key for the entries of one checkpoint and plan on this CPU and torch."""
    digest = hashlib.blake2b(digest_size=12)
    for part in (*parts, torch.__version__, _cpu_name(), str(full_range_is_exact()), "activations per token"):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


class Int8Cache:
    def __init__(self, folder: Path | None, key: str) -> None:
        """`folder` None: no cache (every load quantizes)."""
        self.folder, self.key = folder, key

    def path(self, stage: str) -> Path | None:
        return None if self.folder is None else self.folder / self.key / f"{stage}.safetensors"

    def restore(self, stage: str, module: nn.Module) -> bool:
        """Replace `module`'s Linear layers by the int8 ones stored for `stage`; False when
        there is no entry (or it cannot be read: it is then made again)."""
        path = self.path(stage)
        if path is None or not path.is_file():
            return False
        try:
            stored = TensorFile(path)
            kinds, names = json.loads(stored.metadata["kinds"]), set(stored.keys())
            for name, kind in kinds.items():
                _replace(module, name, _layer(stored, names, name, kind))
        except (OSError, KeyError, ValueError, RuntimeError):
            return False
        return True

    def save(self, stage: str, module: nn.Module) -> None:
        """Store `module`'s quantized Linear layers, a layer at a time (written to a
        temporary file, then moved)."""
        path = self.path(stage)
        if path is None:
            return
        layers = [(name, layer) for name, layer in module.named_modules()
                  if isinstance(layer, DynamicLinear | WeightInt8Linear)]
        kinds = {name: _kind(layer) for name, layer in layers}
        tensors = (item for name, layer in layers for item in _tensors(name, layer).items())
        partial = path.with_suffix(f".{os.getpid()}.partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(partial, tensors, {"kinds": json.dumps(kinds)}, count=4 * len(layers))
            os.replace(partial, path)
        except OSError:  # a read-only or full disk: the next load quantizes again
            partial.unlink(missing_ok=True)


def _kind(layer: nn.Module) -> str:
    if isinstance(layer, WeightInt8Linear):
        return "weights"
    return next(kind for kind, kinds in KINDS.items() if isinstance(layer, kinds))


def _tensors(name: str, layer: DynamicLinear | WeightInt8Linear) -> dict[str, torch.Tensor]:
    if isinstance(layer, WeightInt8Linear):
        out = {f"{name}.int8": layer.weight_int8, f"{name}.scales": layer.scale}
        return out if layer.bias is None else {**out, f"{name}.bias": layer.bias}
    weight, bias = layer._weight_bias()
    if weight.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        scales, zeros = weight.q_per_channel_scales(), weight.q_per_channel_zero_points()
    else:
        scales, zeros = torch.tensor([weight.q_scale()]), torch.tensor([weight.q_zero_point()])
    out = {f"{name}.int8": weight.int_repr().contiguous(), f"{name}.scales": scales.double(),
           f"{name}.zeros": zeros.long()}
    if bias is not None:
        out[f"{name}.bias"] = bias.detach().float().contiguous()
    return out


def _layer(stored, names: set[str], name: str, kind: str) -> nn.Module:
    values, scales = stored.read(f"{name}.int8"), stored.read(f"{name}.scales")
    bias = stored.read(f"{name}.bias") if f"{name}.bias" in names else None
    if kind == "weights":
        return WeightInt8Linear(values, scales, bias)
    zeros = stored.read(f"{name}.zeros")
    if scales.numel() == 1:
        weight = torch._make_per_tensor_quantized_tensor(values, float(scales[0]), int(zeros[0]))
    else:
        weight = torch._make_per_channel_quantized_tensor(values, scales, zeros, 0)
    layer = KINDS[kind](1, 1, bias_=bias is not None, dtype=torch.qint8)  # its own weights: not packed
    layer.out_features, layer.in_features = values.shape
    layer.set_weight_bias(weight, bias)
    return layer


def _replace(module: nn.Module, name: str, layer: nn.Module) -> None:
    owner, _, attribute = name.rpartition(".")
    setattr(module.get_submodule(owner), attribute, layer)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                        platform.processor())
    except OSError:
        return platform.processor()
