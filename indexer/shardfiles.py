"""Parquet shards: what the Ray workers made of a fixed set of files, waiting to be merged.

A shard holds up to `size` files of the sorted list of files to embed, and is named by a
hash of those files (path and content hash), the model and whether captions were made: a
run finds the shards an earlier run finished by name, and computes only the others. Each
is written to a temp file, fsynced and renamed, so a shard on disk is always whole.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from search.files import write_atomically

FOLDER = "ray-shards"  # inside the index folder
SUFFIX = ".parquet"

SCHEMA = pa.schema([
    ("path", pa.string()),
    ("content_hash", pa.string()),  # of the bytes the worker read (scan.content_hash)
    ("model", pa.string()),  # the model that made the row, and its vector shape
    ("queries", pa.int32()),
    ("dim", pa.int32()),
    ("vectors", pa.binary()),  # (queries, dim) float16 in C order, as the catalog stores them
    ("caption", pa.string()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("taken_at", pa.timestamp("us")),  # EXIF date, naive local time
    ("thumbnail", pa.binary()),  # WebP
    ("error", pa.string()),  # why the file could not be read; null when it was
    ("model_calls", pa.int64()),  # a worker batch's model calls, on its first row
])


@dataclass(frozen=True)
class ShardSpec:
    name: str
    files: tuple[tuple[str, str], ...]  # (path, content hash from the plan), sorted

    @property
    def paths(self) -> list[str]:
        return [path for path, _ in self.files]


def cut(files: list[tuple[str, str]], size: int, salt: str) -> list[ShardSpec]:
    """(path, content hash) pairs, sorted by path, in shards of `size`; `salt` names what
    else decides a shard's content (the model, captions or not)."""
    files = sorted(files)
    specs = []
    for start in range(0, len(files), size):
        part = tuple(files[start : start + size])
        digest = hashlib.blake2b(salt.encode(), digest_size=16)
        for path, content in part:
            digest.update(f"\0{path}\0{content}".encode("utf-8", "surrogateescape"))
        specs.append(ShardSpec(digest.hexdigest(), part))
    return specs


def table(rows: list[dict]) -> pa.Table:
    """Rows (dicts holding some or all of SCHEMA's columns; the rest null) as a table."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def vectors(row: dict) -> np.ndarray | None:
    """A row's (queries, dim) vectors as float32 (holding the stored float16 values)."""
    if row["vectors"] is None:
        return None
    flat = np.frombuffer(row["vectors"], dtype=np.float16)
    return flat.reshape(row["queries"], row["dim"]).astype(np.float32)


class ShardFolder:
    """The shards of one index folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / f"{name}{SUFFIX}"

    def done(self, name: str) -> bool:
        return self.path(name).is_file()

    def write(self, name: str, rows: pa.Table) -> None:
        """Write atomically (`files.write_atomically`): a shard on disk is always whole."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path(name), lambda handle: pq.write_table(rows.sort_by("path"), handle))

    def read(self, name: str) -> list[dict]:
        """The shard's rows, their vectors as (queries, dim) float32 arrays (or None)."""
        rows = pq.read_table(self.path(name), schema=SCHEMA).to_pylist()
        return [row | {"vectors": vectors(row)} for row in rows]

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def keep_only(self, names: set[str]) -> int:
        """Remove every shard not in `names`, and temp files of writes that were killed; returns
        how many shards went. A shard this run does not want is outdated: its files changed
        since, or it was merged and a kill came before its removal (its files are unchanged)."""
        if not self.folder.is_dir():
            return 0
        for temp in self.folder.glob(".*.tmp"):
            temp.unlink(missing_ok=True)
        stale = [p for p in self.folder.glob(f"*{SUFFIX}") if p.name.removesuffix(SUFFIX) not in names]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)
