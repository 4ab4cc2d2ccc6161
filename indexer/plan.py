"""What changed under a root since the catalog last saw it: new, changed, moved, copied,
touched and vanished files, found by size, mtime and inode, then by content hash. Changes
nothing. A file unchanged, or moved within its disk, is never read."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from search.records import ImageFile, ImageRecord

if TYPE_CHECKING:
    from search.collection import Collection


@dataclass
class Plan:
    root: str
    unchanged: list[ImageRecord] = field(default_factory=list)
    touched: list[tuple[ImageRecord, ImageFile]] = field(default_factory=list)  # same content, new mtime
    embed: list[ImageFile] = field(default_factory=list)  # new or changed content: the model's work
    moved: list[tuple[ImageRecord, ImageFile]] = field(default_factory=list)
    copied: list[tuple[ImageRecord, ImageFile]] = field(default_factory=list)  # duplicate content
    removed: list[ImageRecord] = field(default_factory=list)
    thumbnails: list[ImageRecord] = field(default_factory=list)  # unchanged, but missing or damaged
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (folder, why): its images kept
    known: int = 0  # images the catalog held under the root before this run


def plan(collection: Collection, root: str, files: list[ImageFile],
         unreadable: list[tuple[str, str]] = ()) -> Plan:
    """Compare `files`, found under `root`, with the catalog: by size, mtime and inode (where
    the row has one), then by content hash. What the catalog holds under an `unreadable`
    folder stays. Changes nothing."""
    known = collection.catalog.under(root)
    result = Plan(root=root, unreadable=list(unreadable), known=len(known))
    present = {f.path for f in files}
    claimed: set[int] = set()
    vanished = {(r.size, r.mtime, r.inode): r for p, r in known.items() if p not in present and r.inode}
    for file in files:
        file.root = root
        record = known.get(file.path)
        seen = (file.size, file.mtime, file.inode)  # a row written before 0009 has no inode
        if record and (record.size, record.mtime, record.inode or file.inode) == seen:
            result.unchanged.append(record)
            if record.status == "ok" and not collection.thumbnails.whole(record.content_hash):
                result.thumbnails.append(record)
            continue
        twin = None if record else vanished.pop((file.size, file.mtime, file.inode), None)
        if twin and not os.path.exists(twin.path):  # moved within its disk: the same file, no read
            file.content_hash = twin.content_hash
            claimed.add(twin.id)
            result.moved.append((twin, file))
            continue
        try:
            file.content_hash = content_hash(file.path)
        except FileNotFoundError:  # deleted since the walk (a syncing folder): as if never seen
            present.discard(file.path)
            continue
        except OSError as exc:  # unreadable: a failed row saying why, and the run goes on
            file.error, file.is_update = _unreadable(exc), record is not None
            result.embed.append(file)
            continue
        if record and record.content_hash == file.content_hash:
            result.touched.append((record, file))
        elif record:
            file.is_update = True
            result.embed.append(file)
        else:
            _new_file(collection, file, present, claimed, result)
    hidden = tuple(folder.rstrip("/") + "/" for folder, _ in unreadable)
    result.removed = [r for p, r in known.items()
                      if p not in present and r.id not in claimed and not p.startswith(hidden)]
    return result


def _new_file(collection: Collection, file: ImageFile, present: set[str], claimed: set[int],
              result: Plan) -> None:
    """A path the catalog does not know: moved from a vanished path, a duplicate, or new."""
    twins = [t for t in collection.catalog.with_hash(file.content_hash) if t.id not in claimed]
    for twin in twins:
        if twin.path not in present and not os.path.exists(twin.path):
            claimed.add(twin.id)
            result.moved.append((twin, file))
            return
    if twins:
        result.copied.append((twins[0], file))
    else:
        result.embed.append(file)


def _unreadable(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot read the file: {exc.strerror or exc}"


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
