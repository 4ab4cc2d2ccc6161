"""Thumbnails: 256 px WebP files named by content hash, derived from the images (never the
store of record), written whole or not at all, and checked before they are trusted."""

from __future__ import annotations

import io
import os
from pathlib import Path

from PIL import Image

from ..errors import ImageError
from ..media.images import open_image
from ..records import ImageRecord
from .atomic import write_atomically

SIDE = 256
FOLDER = "thumbnails"


def make(image: Image.Image) -> bytes:
    """A WebP thumbnail of an RGB picture, at most SIDE on its longer side."""
    thumb = image.copy()
    thumb.thumbnail((SIDE, SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumb.save(buffer, format="WEBP", quality=80)
    return buffer.getvalue()


class Thumbnails:
    def __init__(self, index_folder: Path) -> None:
        self.folder = index_folder / FOLDER

    def path(self, content_hash: str) -> Path:
        return self.folder / content_hash[:2] / f"{content_hash}.webp"

    def write(self, content_hash: str, data: bytes) -> None:
        """Whole or not at all (`atomic`); not fsynced: a thumbnail is checked before it is
        trusted (`whole`) and made again from its file when damaged."""
        path = self.path(content_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, data, durable=False)

    def forget(self, content_hashes: list[str]) -> None:
        """Remove these thumbnails (a batch that was not committed)."""
        for content_hash in content_hashes:
            self.path(content_hash).unlink(missing_ok=True)

    def whole(self, content_hash: str) -> bool:
        """The thumbnail exists and is a whole WebP file: its RIFF header says the length the
        file has (a truncated or overwritten file does not). Costs a stat and 12 bytes."""
        path = self.path(content_hash)
        try:
            with open(path, "rb") as handle:
                head = handle.read(12)
                size = os.fstat(handle.fileno()).st_size
        except OSError:
            return False
        return (len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP"
                and int.from_bytes(head[4:8], "little") + 8 == size)

    def of(self, record: ImageRecord) -> Path | None:
        """`record`'s thumbnail, made again from its file (no model call) when it is missing or
        damaged; None when the file cannot be read either."""
        if not self.whole(record.content_hash):
            source = record.file()
            try:
                data = make(open_image(source)) if source is not None else None
            except ImageError:
                data = None
            if data is None:
                return None
            self.write(record.content_hash, data)
        return self.path(record.content_hash)

    def any(self) -> bool:
        return any(self.folder.glob("*/*.webp"))
