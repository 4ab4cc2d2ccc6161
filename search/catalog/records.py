"""What the catalog hands out and takes in: plain dataclasses, no SQLAlchemy."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np

from .schema import ImageRow


@dataclass(frozen=True)
class ImageRecord:
    id: int
    path: str
    root: str
    content_hash: str
    size: int
    mtime: float
    width: int | None
    height: int | None
    taken_at: datetime | None
    caption: str | None
    status: str
    error: str | None
    indexed_at: datetime

    def to_json(self) -> dict:
        """The `image` shape of the public contract."""
        return {
            "id": self.id, "path": self.path, "caption": self.caption, "width": self.width,
            "height": self.height, "taken_at": iso(self.taken_at), "indexed_at": iso(self.indexed_at),
            "status": self.status, "error": self.error,
        }


@dataclass
class NewImage:
    """A file's row to write; `vectors` is (Q, D) for a readable image, None for a failed one."""

    path: str
    root: str
    content_hash: str
    size: int
    mtime: float
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    caption: str | None = None
    status: str = "ok"
    error: str | None = None
    vectors: np.ndarray | None = None


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def record(row: ImageRow) -> ImageRecord:
    return ImageRecord(**{f.name: getattr(row, f.name) for f in fields(ImageRecord)})
