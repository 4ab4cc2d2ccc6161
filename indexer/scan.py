"""Walking folders: which files are images or videos, and what changed since the catalog last saw them.

Files are recognised by their content (magic bytes), not their names: a JPEG named `.png`
is read, and a text file named `.jpg` is reported as failed. Hidden files and folders are
skipped, `--exclude` globs apply to names and to paths relative to the root, and symlinked
folders are followed once (a loop is cut where it closes).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from search.collection import Collection
from search.errors import InputError
from search.media.video import VIDEO_SUFFIXES, looks_like_video
from search.records import ImageFile

from .guard import marked_root
from .plan import Plan, plan

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic", ".heif",
}
HEAD_BYTES = 32


def looks_like_image(head: bytes) -> bool:
    """True when the first bytes carry the signature of a format we read."""
    return (
        head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM",
                         b"II*\x00", b"MM\x00*"))
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or (head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"))
    )


def walk(root: Path, exclude: Sequence[str] = (), unreadable: list[tuple[str, str]] | None = None
         ) -> Iterator[ImageFile]:
    """Candidate files under `root`: an image or video suffix, or such content under any name. A
    folder that cannot be listed (permissions, a disk gone for a moment) is added to
    `unreadable` as (path, why): what the catalog holds under it is not known to be gone."""
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
        except OSError as exc:
            if unreadable is not None and not isinstance(exc, FileNotFoundError):  # deleted mid-walk: gone
                unreadable.append((str(folder), f"folder unreadable ({exc.strerror or exc}): its images "
                                                "in the index are kept as they were"))
            continue
        for entry in entries:
            if entry.name.startswith(".") or excluded(entry.path, root, exclude):
                continue
            try:
                if entry.is_dir(follow_symlinks=True):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=True) and _is_candidate(entry.path):
                    stat = entry.stat(follow_symlinks=True)
                    yield ImageFile(entry.path, stat.st_size, stat.st_mtime, inode=stat.st_ino)
            except OSError:
                continue  # a dangling symlink or a file gone mid-walk


def plan_roots(collection: Collection, roots: Iterable[Path], exclude: Sequence[str] = ()) -> list[Plan]:
    """What changed under each root since the catalog last saw it; changes nothing. A root
    that is missing, not a folder or holds no images is refused before anything changes (a
    folder inside a marked root may hold none: `guard`).
    Each file is planned once: a root given twice, or inside another root given, is walked
    as part of the outer one, and a file reached from two roots (by a symlink) counts once."""
    resolved = [_folder(given) for given in roots]
    plans, seen = [], set()
    for root in sorted(set(resolved)):
        if any(other != root and root.is_relative_to(other) for other in resolved):
            continue  # walked with the root that holds it
        unreadable: list[tuple[str, str]] = []
        files = [file for file in walk(root, exclude, unreadable) if file.path not in seen]
        if not files and (unreadable or not _inside_marked(root)) and (
                not unreadable or unreadable[0][0] == str(root)):
            why = f" ({unreadable[0][1].split(':')[0]})" if unreadable else ""
            raise InputError(f"{root} holds no images{why}; nothing was changed "
                             "(the catalog keeps its images)")
        seen.update(file.path for file in files)
        plans.append(plan(collection, str(root), files, unreadable))
    return plans


def _inside_marked(folder: Path) -> bool:
    """Whether a folder above `folder` holds the marker (`guard`): a sub-folder of an indexed
    root may be empty (its last images deleted); the root itself, empty, is refused."""
    return folder.parent != folder and marked_root(folder.parent) is not None


def _folder(given: Path) -> Path:
    root = Path(given).expanduser().resolve()
    if not root.exists():
        raise InputError(f"{root} does not exist; nothing was changed")
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; nothing was changed")
    return root


def _is_candidate(path: str) -> bool:
    if Path(path).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
            return looks_like_image(head) or looks_like_video(head)
    except OSError:
        return False


def excluded(path: str, root: Path, patterns: Sequence[str]) -> bool:
    if not patterns:
        return False
    name = os.path.basename(path)
    relative = os.path.relpath(path, root)
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in patterns)
