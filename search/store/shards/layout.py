"""The folder a set of shards lives in, and the writer that splits a collection into it.

    ROOT/manifest.json            which set is current: its folder, shard count, vector shape,
                                  index kind, the catalog generation it covers, images a shard
    ROOT/<set>/shard-000/vectors.faiss   the shard's own vector index (a `MemoryIndex` snapshot)
    ROOT/<set>/shard-000/ids.npy         its image ids, in the order of its stored vectors
    ROOT/<set>/shard-000/stored.f16      its (n, Q, D) float16 vectors, read by memory map

An image belongs to shard `id % count`. A new set is written beside the current one and the
manifest, replaced atomically, names it last: a shard that reloads (it checks the manifest)
finds a whole set or the old one. The set before the current one is kept for replicas still
reading it; older ones are removed. Every file is plain, so the folder copies to object
storage as it is (a shard reads it from local disk).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...errors import SearchError
from ..atomic import write_atomically
from ..vectors import MemoryIndex

MANIFEST = "manifest.json"
VECTORS, IDS, STORED = "vectors.faiss", "ids.npy", "stored.f16"


@dataclass(frozen=True)
class Manifest:
    count: int  # shards
    queries: int
    dim: int
    kind: str  # exact | compressed
    generation: int  # the catalog generation the set covers
    model: str
    images: tuple[int, ...]  # images each shard holds
    folder: str  # the set's folder under the root

    def shard(self, root: Path, number: int) -> Path:
        return Path(root) / self.folder / f"shard-{number:03d}"


def read_manifest(root: Path) -> Manifest:
    try:
        data = json.loads((Path(root) / MANIFEST).read_text())
        return Manifest(**{**data, "images": tuple(data["images"])})
    except FileNotFoundError:
        raise SearchError(f"no shards at {root}: write them with `blip2-search shard`") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise SearchError(f"the shard manifest at {root} is unreadable: {exc}") from None


def write_shards(root: Path, count: int, batches: Iterable[tuple[np.ndarray, np.ndarray]], *, queries: int,
                 dim: int, kind: str, generation: int, model: str) -> Manifest:
    """Split (ids, (n, Q, D) vectors) batches into `count` shards under `root` and make them
    current. Each shard's index is built as its vectors arrive; its stored vectors are
    appended to its file, so no more than a batch is held at once."""
    if count < 1:
        raise SearchError("a collection needs at least one shard")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"g{generation}-{time.time_ns()}"
    building = root / f".{name}.building"
    folders = [building / f"shard-{i:03d}" for i in range(count)]
    indexes = [MemoryIndex(queries, dim, kind) for _ in range(count)]
    ids: list[list[np.ndarray]] = [[] for _ in range(count)]
    try:
        handles = []
        for folder in folders:
            folder.mkdir(parents=True)
            handles.append(open(folder / STORED, "wb"))  # noqa: SIM115 (closed below)
        for batch_ids, vectors in batches:
            batch_ids = np.asarray(batch_ids, dtype=np.int64)
            for number in range(count):
                mine = batch_ids % count == number
                if mine.any():
                    own = np.ascontiguousarray(vectors[mine], dtype=np.float16)
                    indexes[number].add(batch_ids[mine], own)
                    handles[number].write(own.tobytes())
                    ids[number].append(batch_ids[mine])
        for handle in handles:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        for number, folder in enumerate(folders):
            indexes[number].generation = generation
            indexes[number].save(folder / VECTORS)
            np.save(folder / IDS, np.concatenate(ids[number]) if ids[number] else np.zeros(0, np.int64))
        os.replace(building, root / name)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    manifest = Manifest(count, queries, dim, kind, generation, model,
                        tuple(len(index) for index in indexes), name)
    previous = _current_folder(root)
    write_atomically(root / MANIFEST, json.dumps(asdict(manifest), indent=1).encode())
    for old in root.glob("g*-*"):
        if old.name not in (name, previous):
            shutil.rmtree(old, ignore_errors=True)
    return manifest


def _current_folder(root: Path) -> str | None:
    try:
        return read_manifest(root).folder
    except SearchError:
        return None
