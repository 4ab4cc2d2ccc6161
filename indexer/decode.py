"""Decoding one file, in a worker process: pixels, dimensions, EXIF date and a thumbnail.

The file is read from its path, or from bytes already read (a Ray worker gets them from
`read_binary_files`); both go through the same defensive decoder. Kept free of torch so
worker processes start fast and stay small.
"""

from __future__ import annotations

import io
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from search.errors import ImageError
from search.images import load_image

THUMBNAIL_SIDE = 256


@dataclass
class Decoded:
    path: str
    image: Image.Image | None = None
    taken_at: datetime | None = None
    thumbnail: bytes | None = None  # WebP
    error: str | None = None


def watch_parent(parent: int) -> None:
    """Worker-process initializer: exit once the indexing process is gone (say, killed), rather
    than linger blocked on a queue whose other end no longer exists."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def decode(path: str, data: bytes | None = None) -> Decoded:
    """`path`'s pixels, date and thumbnail, or the reason it cannot be read; `data`: the
    file's bytes when they are already in memory (`path` then only names the file)."""
    try:
        loaded = load_image(path if data is None else io.BytesIO(data))
    except ImageError as exc:
        return Decoded(path, error=str(exc))
    except Exception as exc:  # a decoder bug must not stop the run: record it as this file's error
        return Decoded(path, error=f"cannot decode: {type(exc).__name__}: {exc}")
    thumb = loaded.image.copy()
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, format="WEBP", quality=80)
    return Decoded(path, loaded.image, loaded.taken_at, buffer.getvalue())
