"""One shard: the images whose id is its number modulo the shard count, and what it answers.

`ShardEngine` is the whole interface a shard engine implements: a text query's top k
images and an image query's top k, each with exact scores, among the shard's own images
(and, when given, the allowed ids). `FaissShard` is the project's own: a `MemoryIndex`
(exact or compressed) as a first stage, and the shard's stored float16 vectors, read by
memory map, to score a compressed stage's candidates exactly.

A second engine takes the same three methods. LanceDB would hold a shard's vectors as a
multivector column (a list of 32 fixed-size vectors) and answer `text` with its MaxSim
search, then re-score the top rows exactly as here; pgvector would hold one row a query
vector with an HNSW index and take the max per image in SQL; Qdrant Edge has multivector
MaxSim built in, but its multivector HNSW gave recall 0.55 in a probe, so it would need
exact search (or a larger `ef`) to keep the merge exact.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ...errors import SearchError
from ..vectors import MemoryIndex
from .layout import IDS, MANIFEST, STORED, VECTORS, Manifest, read_manifest

Found = tuple[np.ndarray, np.ndarray]  # (ids (n,) int64, scores (n,) float32), best first
CHECK_EVERY_S = 1.0  # how often a shard looks for a new set of shards
CHUNK = 2048  # images a product when scoring from the stored vectors


class ShardEngine(Protocol):
    def text(self, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Found]:
        """For each (D,) text vector, this shard's top k images by max-sim."""

    def similar(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
                depth: int | None = None) -> Found:
        """This shard's top k images by the mean over the (Q', D) query of the max cosine;
        `depth`: images a compressed first stage proposes for each query vector (default k)."""

    def info(self) -> dict:
        """What the shard holds: its number, images, index kind and the generation covered."""


class FaissShard:
    def __init__(self, root: Path, number: int) -> None:
        self.root, self.number = Path(root), number
        self._lock = threading.Lock()
        self._checked = 0.0
        self._stamp: int | None = None
        self._load(read_manifest(self.root))

    # -- ShardEngine --------------------------------------------------------------------------

    def text(self, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[Found]:
        loaded = self._follow()
        allowed = loaded.own(allowed, self.number)
        text_vecs = np.atleast_2d(np.asarray(text_vecs, dtype=np.float32))
        out = []
        for text, first in zip(text_vecs, loaded.index.search(text_vecs, k, allowed), strict=True):
            if first.exact:
                out.append((first.ids, first.scores))
            else:  # codes: their images scored exactly from the stored vectors
                scores = loaded.score(first.ids, lambda v, t=text: (v @ t).max(axis=1))
                out.append(top(first.ids, scores, k))
        return out

    def similar(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
                depth: int | None = None) -> Found:
        loaded = self._follow()
        query = np.ascontiguousarray(query, dtype=np.float32)
        allowed = loaded.own(allowed, self.number)
        if loaded.index.kind == "exact":  # every image, from the rows in memory
            ids, scores = loaded.index.score_images(query)
            if allowed is not None:
                keep = np.isin(ids, allowed)
                ids, scores = ids[keep], scores[keep]
            return top(ids, scores, k)
        # codes: the union of what the first stage proposes for each query vector, scored
        # exactly from the stored vectors (as one machine's `query.similar` does)
        depth = depth or k
        firsts = loaded.index.search(query, depth, allowed, depth=depth)
        ids = np.unique(np.concatenate([first.ids for first in firsts])) if firsts else np.zeros(0, np.int64)
        scores = loaded.score(ids, lambda v: np.einsum("ncd,qd->ncq", v, query).max(axis=1).mean(axis=1))
        return top(ids, scores, k)

    def info(self) -> dict:
        loaded = self._follow()
        return {"shard": self.number, "images": len(loaded.ids), "kind": loaded.index.kind,
                "generation": loaded.manifest.generation, "set": loaded.manifest.folder, "pid": os.getpid()}

    @property
    def ids(self) -> np.ndarray:
        """The shard's image ids, in the order of its stored vectors."""
        return self._loaded.ids

    # -- internals ----------------------------------------------------------------------------

    def _load(self, manifest: Manifest) -> None:
        if self.number >= manifest.count:
            raise SearchError(f"shard {self.number} is not in a set of {manifest.count}")
        folder = manifest.shard(self.root, self.number)
        index = MemoryIndex.load(folder / VECTORS, manifest.queries, manifest.dim)
        ids = np.load(folder / IDS)
        shape = (len(ids), manifest.queries, manifest.dim)
        stored = (np.memmap(folder / STORED, dtype=np.float16, mode="r", shape=shape) if len(ids)
                  else np.zeros(shape, np.float16))
        order = np.argsort(ids, kind="stable")
        self._loaded = _Loaded(manifest, index, ids, stored, order, ids[order])  # one assignment: a
        self._stamp = _stamp(self.root)  # query holds one set or the other, never parts of both

    def _follow(self) -> _Loaded:
        """The set to answer from: a new one when the manifest names it (checked once a second)."""
        now = time.monotonic()
        if now - self._checked < CHECK_EVERY_S:
            return self._loaded
        with self._lock:
            self._checked = now
            if _stamp(self.root) != self._stamp:
                manifest = read_manifest(self.root)
                if manifest.folder != self._loaded.manifest.folder:
                    self._load(manifest)
                self._stamp = _stamp(self.root)
            return self._loaded


@dataclass(frozen=True)
class _Loaded:
    """One set's shard as loaded: what a query reads, all of one set."""

    manifest: Manifest
    index: MemoryIndex
    ids: np.ndarray
    stored: np.ndarray  # (n, Q, D) float16, memory-mapped
    order: np.ndarray  # argsort of ids
    sorted: np.ndarray  # ids[order]

    def own(self, allowed: np.ndarray | None, number: int) -> np.ndarray | None:
        if allowed is None:
            return None
        allowed = np.asarray(allowed, dtype=np.int64)
        return allowed[allowed % self.manifest.count == number]

    def score(self, ids: np.ndarray, score) -> np.ndarray:
        """`score((n, Q, D) float32)` over the stored vectors of `ids`, a chunk at a time."""
        where = np.searchsorted(self.sorted, ids)
        where = self.order[np.minimum(where, len(self.order) - 1)]
        out = np.empty(len(ids), dtype=np.float32)
        for start in range(0, len(ids), CHUNK):
            rows = np.sort(where[start : start + CHUNK])  # in file order: the memory map reads forward
            back = np.argsort(np.argsort(where[start : start + CHUNK]))
            out[start : start + CHUNK] = score(self.stored[rows].astype(np.float32))[back]
        return out


def top(ids: np.ndarray, scores: np.ndarray, k: int) -> Found:
    """The k best, by score descending then id ascending (the order every index keeps)."""
    order = np.lexsort((ids, -scores))[:k]
    return np.asarray(ids, dtype=np.int64)[order], np.asarray(scores, dtype=np.float32)[order]


def _stamp(root: Path) -> int | None:
    try:
        return (root / MANIFEST).stat().st_mtime_ns
    except FileNotFoundError:
        return None
