"""Plain dataclasses the library hands around, light enough for decoding workers and Ray
actors to import: an image as the catalog hands it out (`ImageRecord`), a file on its way in
(`ImageFile`), the model that built an index (`ModelInfo`), what a search may return
(`Selection`), the duplicate finder's input (`Fingerprints`), a turn of a chat (`Turn`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """The model that built an index: its name and vector shape (Q × D)."""

    name: str
    queries: int
    dim: int


@dataclass(frozen=True)
class ImageRecord:
    """A row as stored."""

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
    text: str | None = None  # written in the image (OCR): None when not read, "" when none
    picture_hash: int | None = None  # 64-bit perceptual hash of the picture, signed
    media: str = "image"  # or "video": a video's row, or (with a parent) one of its moments
    parent: int | None = None  # a moment's video
    start_s: float | None = None  # a moment's span in seconds; a video's: 0 and its duration
    end_s: float | None = None
    frame_s: float | None = None  # a moment's: when its frame (thumbnail, vectors) is shown
    inode: int | None = None  # the file's when it was seen (migration 0009); None: not known

    def file(self) -> Path | None:
        """The file behind the row, only if it still resolves inside its indexed root (a file
        replaced by a symlink pointing elsewhere is refused) and is still the file indexed:
        the same size and modification time (a hard link to another file put in its place,
        or any change, is refused until it is indexed again)."""
        path, root = os.path.realpath(self.path), os.path.realpath(self.root)
        if os.path.commonpath([path, root]) != root or not os.path.isfile(path):
            return None
        found = os.stat(path)
        return Path(path) if (found.st_size, found.st_mtime) == (self.size, self.mtime) else None


@dataclass
class ImageFile:
    """One file on its way into the catalog, from the scan to the commit: what the scan saw,
    then what decoding and the model made of it. Written as a row whose status is "ok" when
    it has vectors, else "failed" with its `error`."""

    path: str
    size: int
    mtime: float
    root: str = ""  # the indexed folder it was found under
    content_hash: str = ""
    is_update: bool = False  # the catalog holds an older version of this path
    # decoding
    image: Any = None  # the decoded picture (PIL, RGB), the model's input; dropped once embedded
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None  # EXIF date
    thumbnail: bytes | None = None  # WebP
    text: str | None = None  # written in the picture (OCR), "" when none; None: not read
    picture_hash: int | None = None  # 64-bit perceptual hash, signed
    error: str | None = None  # why it could not be read
    # the model
    vectors: np.ndarray | None = None  # (Q, D) float16, as the catalog stores them
    caption: str | None = None
    features: dict | None = None  # side -> `features.Features`, with `index --keep-features`
    # videos: a video's file carries its moments (each an `ImageFile` with its span), which
    # decoding finds and the model embeds; the video's own row has no vectors
    media: str = "image"
    start_s: float | None = None
    end_s: float | None = None
    frame_s: float | None = None
    moments: list[ImageFile] | None = None
    of: str | None = None  # a moment's: its video's path
    inode: int | None = None  # the file's, from the walk: a move within a disk keeps it

    @property
    def status(self) -> str:
        if self.media == "video" and self.moments is not None:
            return "ok" if self.moments and all(m.vectors is not None for m in self.moments) else "failed"
        return "ok" if self.vectors is not None else "failed"

    @property
    def pictures(self) -> list[ImageFile]:
        """What the model embeds for this file: itself (an image), or its moments (a video)."""
        if self.moments is not None:
            return [moment for moment in self.moments if moment.image is not None]
        return [self] if self.image is not None else []


def moment_path(video_path: str, content_hash: str, start_s: float) -> str:
    """A moment's path in the catalog: its video's, with its start and the video's content."""
    return f"{video_path}#{start_s:.3f}@{content_hash[:12]}"


def entries(files: list[ImageFile]) -> list[ImageFile]:
    """The catalog rows `files` make: each file, a video followed by its moments."""
    return [entry for file in files for entry in (file, *(file.moments or ()))]


@dataclass(frozen=True)
class Selection:
    """The images a search or a listing may return: every condition holds."""

    path_prefix: str | None = None  # an absolute folder
    path_part: str | None = None  # a folder or file name in the path starts with it
    after: datetime | None = None  # dated (EXIF, else modified) on or after
    before: datetime | None = None
    caption: tuple[str, ...] = ()  # phrases whose words the caption holds
    text: tuple[str, ...] = ()  # phrases written in the image (OCR), matched tolerantly
    media: str | None = None  # "image" or "video" (its moments)
    within: tuple[int, ...] | None = None  # only these rows (an album's: `album:`)

    def __bool__(self) -> bool:
        return any((self.path_prefix, self.path_part, self.after, self.before, self.caption, self.text,
                    self.media, self.within is not None))


@dataclass(frozen=True)
class AlbumRecord:
    """A smart album as stored: its saved query and how far it has followed the catalog."""

    id: int
    name: str
    query: str
    min_match: float | None  # None: a query of filters alone
    sort: str
    where: tuple[str, ...]
    created_at: datetime
    seen_at: datetime | None  # last shown
    seen: int  # the catalog generation it was last shown at: images written since are new to it
    checked: int  # the catalog generation its verdicts cover


@dataclass(frozen=True)
class Fingerprints:
    """What tells readable images apart as pictures, one entry each, ascending ids: the
    duplicate finder's input besides the vectors."""

    ids: np.ndarray  # (n,) int64
    paths: list[str]
    content_hashes: list[str]
    picture_hashes: np.ndarray  # (n,) int64, 0 where `hashed` is False
    hashed: np.ndarray  # (n,) bool: a picture hash was computed (images indexed since it exists)
    pixels: np.ndarray  # (n,) int64: width x height, 0 when unknown
    dates: np.ndarray  # (n,) float64: EXIF date, else modification time, seconds since the epoch
    texts: list[str | None] | None = None  # the text OCR read in each (None: not read); None: not loaded


@dataclass(frozen=True)
class Turn:
    """An earlier question about an image and its answer, in a chat."""

    question: str
    answer: str
