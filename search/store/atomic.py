"""Writing a file so that a crash never leaves half of it: the one way the package does it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, write: Callable[[BinaryIO], None] | bytes, *, durable: bool = True) -> None:
    """`write(handle)` (or the bytes given) into a temp file beside `path`
    (`.{name}.{pid}.tmp`, which a reader can find and delete after a kill), then rename it
    over `path`: a reader sees the old file or the new one, never a part.

    `durable`: fsync the file before the rename and the folder after it, so that the rename
    survives a power cut too. A derived file that is checked before it is trusted and made
    again when damaged (a thumbnail) skips it: two fsyncs an image would slow indexing."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            if isinstance(write, bytes):
                handle.write(write)
            else:
                write(handle)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)  # a write that failed (a full disk) leaves nothing behind
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
