"""Writing a file so that a crash never leaves half of it: the one way the package does it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """`write(handle)` into a temp file beside `path` (`.{name}.{pid}.tmp`, which a reader can
    find and delete after a kill), fsync it, rename it over `path`, and fsync the folder so
    the rename itself survives a power cut."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
