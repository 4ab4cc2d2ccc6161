"""Walking folders: which files are images, and what changed since the catalog last saw them.

Files are recognised by their content (magic bytes), not their names: a JPEG named `.png`
is read, and a text file named `.jpg` is reported as failed. Hidden files and folders are
skipped, `--exclude` globs apply to names and to paths relative to the root, and symlinked
folders are followed once (a loop is cut where it closes).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from search.catalog import Catalog, ImageRecord
from search.errors import InputError

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif",
}
HEAD_BYTES = 32


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    mtime: float


@dataclass
class Plan:
    root: str
    unchanged: list[ImageRecord] = field(default_factory=list)
    touched: list[tuple[ImageRecord, FileInfo]] = field(default_factory=list)  # same content, new mtime
    embed: list[tuple[FileInfo, str, bool]] = field(default_factory=list)  # (file, hash, is_update)
    moved: list[tuple[ImageRecord, FileInfo]] = field(default_factory=list)
    copied: list[tuple[ImageRecord, FileInfo]] = field(default_factory=list)  # duplicate content
    removed: list[ImageRecord] = field(default_factory=list)


def looks_like_image(head: bytes) -> bool:
    """True when the first bytes carry the signature of a format we read."""
    return (
        head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
                         b"II*\x00", b"MM\x00*"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or (head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"))
    )


def walk(root: Path, exclude: Sequence[str] = ()) -> Iterator[FileInfo]:
    """Candidate files under `root`: an image suffix, or image content under any name."""
    seen_dirs: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            stat = folder.stat()
            if (stat.st_dev, stat.st_ino) in seen_dirs:
                continue  # a symlink loop, or a folder reached twice
            seen_dirs.add((stat.st_dev, stat.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".") or _excluded(entry.path, root, exclude):
                continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=True) and _is_candidate(entry.path):
                    stat = entry.stat(follow_symlinks=True)
                    yield FileInfo(entry.path, stat.st_size, stat.st_mtime)
            except OSError:
                continue  # a dangling symlink or a file gone mid-walk


def content_hash(path: str) -> str:
    digest = _hasher()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_hash(data: bytes) -> str:
    """`content_hash` of a file whose bytes are already in memory."""
    digest = _hasher()
    digest.update(data)
    return digest.hexdigest()


def _hasher():
    return hashlib.blake2b(digest_size=20)


def plan(catalog: Catalog, root: Path, exclude: Sequence[str] = ()) -> Plan:
    """Compare the files under `root` with the catalog: by size and mtime, then by content hash."""
    if not root.exists():
        raise InputError(f"{root} does not exist; nothing was changed")
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; nothing was changed")
    files = list(walk(root, exclude))
    if not files:
        raise InputError(f"{root} holds no images; nothing was changed (the catalog keeps its images)")
    known = catalog.records_under(str(root))
    result = Plan(root=str(root))
    present = {f.path for f in files}
    claimed: set[int] = set()
    for info in files:
        record = known.get(info.path)
        if record and (record.size, record.mtime) == (info.size, info.mtime):
            result.unchanged.append(record)
            continue
        digest = content_hash(info.path)
        if record and record.content_hash == digest:
            result.touched.append((record, info))
        elif record:
            result.embed.append((info, digest, True))
        else:
            _new_file(catalog, info, digest, present, claimed, result)
    result.removed = [r for p, r in known.items() if p not in present and r.id not in claimed]
    return result


def _new_file(catalog, info, digest, present, claimed, result: Plan) -> None:
    """A path the catalog does not know: moved from a vanished path, a duplicate, or new."""
    for twin in catalog.records_with_hash(digest):
        if twin.id in claimed:
            continue
        if twin.path not in present and not os.path.exists(twin.path):
            claimed.add(twin.id)
            result.moved.append((twin, info))
            return
    twins = [t for t in catalog.records_with_hash(digest) if t.id not in claimed]
    if twins:
        result.copied.append((twins[0], info))
    else:
        result.embed.append((info, digest, False))


def _is_candidate(path: str) -> bool:
    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            return looks_like_image(handle.read(HEAD_BYTES))
    except OSError:
        return False


def _excluded(path: str, root: Path, patterns: Sequence[str]) -> bool:
    if not patterns:
        return False
    name = os.path.basename(path)
    relative = os.path.relpath(path, root)
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in patterns)
