"""Parquet shards: what the Ray workers made of a fixed set of files, waiting to be merged.

A shard holds up to `size` files of the sorted list of files to embed, and is named by a
hash of those files (path and content hash), the model and whether captions were made: a
run finds the shards an earlier run finished by name, and computes only the others. Each
is written to a temp file, fsynced and renamed, so a shard on disk is always whole. A row
is an `ImageFile` as the worker left it, plus the model that made it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from search.records import ImageFile, ModelInfo
from search.store.atomic import write_atomically

FOLDER = "ray-shards"  # inside the index folder
SUFFIX = ".parquet"
FIELDS = ("path", "content_hash", "caption", "text", "picture_hash", "width", "height", "taken_at",
          "thumbnail", "error")

SCHEMA = pa.schema([
    ("path", pa.string()),
    ("content_hash", pa.string()),  # of the bytes the worker read
    ("model", pa.string()),  # the model that made the row, and its vector shape
    ("queries", pa.int32()),
    ("dim", pa.int32()),
    ("vectors", pa.binary()),  # (queries, dim) float16 in C order, as the catalog stores them
    ("caption", pa.string()),
    ("text", pa.string()),  # written in the picture (OCR); null when not read
    ("picture_hash", pa.int64()),  # perceptual, 64 bits
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


def rows(files: list[ImageFile], model: ModelInfo) -> list[dict]:
    """Each file as a row of SCHEMA, made by `model`."""
    shape = {"model": model.name, "queries": model.queries, "dim": model.dim}
    return [{name: getattr(file, name) for name in FIELDS} | shape
            | {"vectors": None if file.vectors is None else file.vectors.tobytes()} for file in files]


def table(rows: list[dict]) -> pa.Table:
    """Rows (dicts holding some or all of SCHEMA's columns; the rest null) as a table."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)


class ShardFolder:
    """The shards of one index folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / f"{name}{SUFFIX}"

    def done(self, name: str) -> bool:
        return self.path(name).is_file()

    def write(self, name: str, shard: pa.Table) -> None:
        """Write atomically (`search.store.atomic`): a shard on disk is always whole."""
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path(name), lambda handle: pq.write_table(shard.sort_by("path"), handle))

    def read(self, name: str) -> tuple[list[ImageFile], ModelInfo]:
        """The shard's files as the workers left them (size and mtime are the plan's to
        give), and the model that made them."""
        found = pq.read_table(self.path(name), schema=SCHEMA).to_pylist()
        first = found[0]
        files = [ImageFile(row["path"], 0, 0.0, vectors=_vectors(row),
                           **{key: row[key] for key in FIELDS if key != "path"}) for row in found]
        return files, ModelInfo(first["model"], first["queries"], first["dim"])

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


def _vectors(row: dict) -> np.ndarray | None:
    """A row's (queries, dim) float16 vectors, as stored."""
    if row["vectors"] is None:
        return None
    return np.frombuffer(row["vectors"], dtype=np.float16).reshape(row["queries"], row["dim"])
