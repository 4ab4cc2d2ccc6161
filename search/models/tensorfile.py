"""Tensors read from a safetensors file one at a time, with plain reads.

The safetensors library maps the whole file into memory, and every tensor read through the
map leaves its pages in the process's resident memory until the file is closed: a checkpoint
read part by part that way counted 12 GB at real size before its first batch. Here each
tensor's bytes are read into a buffer of its own, which becomes the tensor; the file's pages
stay in the kernel's page cache, not in the process.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
MAX_HEADER = 100 << 20  # the format's own limit


class TensorFile:
    def __init__(self, path: Path) -> None:
        """Read the header; a file that is not safetensors raises ValueError."""
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) != 8:
                raise ValueError(f"{self.path.name} is not a safetensors file (too short)")
            (size,) = struct.unpack("<Q", prefix)
            if size > MAX_HEADER:
                raise ValueError(f"{self.path.name} is not a safetensors file (header of {size} bytes)")
            try:
                header = json.loads(handle.read(size))
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise ValueError(f"{self.path.name} is not a safetensors file (unreadable header)") from None
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self.entries: dict[str, dict] = header
        self._start = 8 + size

    def keys(self) -> list[str]:
        return list(self.entries)

    def raw(self, name: str) -> bytearray:
        """The tensor's bytes, as stored."""
        begin, end = self.entries[name]["data_offsets"]
        buffer = bytearray(end - begin)
        view, done = memoryview(buffer), 0
        fd = os.open(self.path, os.O_RDONLY)
        try:
            while done < len(buffer):
                count = os.preadv(fd, [view[done:]], self._start + begin + done)
                if count == 0:
                    raise ValueError(f"{self.path.name} is truncated: {name} is cut short")
                done += count
        finally:
            os.close(fd)
        return buffer

    def read(self, name: str) -> torch.Tensor:
        entry = self.entries[name]
        dtype, shape = DTYPES[entry["dtype"]], entry["shape"]
        buffer = self.raw(name)
        if not buffer:
            return torch.empty(shape, dtype=dtype)
        return torch.frombuffer(buffer, dtype=dtype).reshape(shape)


NAMES = {dtype: name for name, dtype in DTYPES.items()}


def write(path: Path, tensors: Iterable[tuple[str, torch.Tensor]], metadata: dict[str, str],
          count: int) -> None:
    """A safetensors file of the `count` (at most) tensors `tensors` yields, written as they
    come, one at a time (an int8 language model is 2.6 GB): room for the header is kept at
    the start, and the header, padded with spaces as the format allows, is written last."""
    room = len(json.dumps(metadata)) + 320 * count + 64  # a name, a dtype, a shape, offsets
    entries, offset = {}, 0
    with open(path, "wb") as handle:
        handle.seek(8 + room)
        for name, tensor in tensors:
            data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
            entries[name] = {"dtype": NAMES[tensor.dtype], "shape": list(tensor.shape),
                             "data_offsets": [offset, offset + data.nbytes]}
            handle.write(memoryview(data))
            offset += data.nbytes
        header = json.dumps({"__metadata__": metadata, **entries}, separators=(",", ":")).encode()
        if len(header) > room:
            raise ValueError(f"a header of {len(header)} bytes does not fit the {room} kept for it")
        handle.seek(0)
        handle.write(struct.pack("<Q", room) + header.ljust(room))
        handle.flush()
        os.fsync(handle.fileno())
