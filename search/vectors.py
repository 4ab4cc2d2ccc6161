"""The vector index: exact multi-vector max-sim over every image's Q query vectors (FAISS).

Each image contributes Q rows with FAISS id `image_id * Q + q`. A text query searches the top
Q·k rows and keeps the max per image; that is exact, because every row scoring above the
k-th image's best row belongs to one of the k-1 images ranked above it (at most Q rows each)
or to that image itself. Ties at the boundary are resolved by a range search, and results
are ordered by (score desc, image id asc).

The index is a snapshot of the catalog: written to a temp file, fsynced, renamed, and tagged
with the catalog generation it covers. A snapshot that is corrupt raises `SnapshotError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from .errors import SearchError

MAGIC = b"BLIP2IDX1\n"


class SnapshotError(SearchError):
    """The snapshot file is missing, truncated, corrupt, or for another vector shape."""


class VectorIndex:
    def __init__(self, queries: int, dim: int) -> None:
        self.queries, self.dim = queries, dim
        self.generation = 0
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @property
    def ntotal(self) -> int:
        """Rows (vectors) held: images × Q."""
        return self._index.ntotal

    def __len__(self) -> int:
        return self.ntotal // self.queries

    def add(self, image_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) image ids with their (n, Q, D) vectors; ids already present are replaced."""
        image_ids = np.asarray(image_ids, dtype=np.int64)
        if len(image_ids) == 0:
            return
        self.remove(image_ids)
        rows = np.ascontiguousarray(vectors.reshape(-1, self.dim), dtype=np.float32)
        self._index.add_with_ids(rows, self._row_ids(image_ids))

    def remove(self, image_ids: np.ndarray) -> None:
        image_ids = np.asarray(image_ids, dtype=np.int64)
        if len(image_ids) and self.ntotal:
            self._index.remove_ids(faiss.IDSelectorBatch(self._row_ids(image_ids)))

    def search(
        self, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """For each (D,) text vector, the top-k (image id, max-over-queries cosine)."""
        text_vecs = np.ascontiguousarray(np.atleast_2d(text_vecs), dtype=np.float32)
        if k <= 0 or self.ntotal == 0:
            return [[] for _ in text_vecs]
        params = None
        available = self.ntotal
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            if len(allowed) == 0:
                return [[] for _ in text_vecs]
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(self._row_ids(allowed)))
            available = min(available, len(allowed) * self.queries)
        rows = min(self.queries * k, available)
        scores, ids = self._index.search(text_vecs, rows, params=params)
        return [self._top_images(text_vecs[i], scores[i], ids[i], k, params) for i in range(len(text_vecs))]

    def vectors_of(self, image_id: int) -> np.ndarray:
        """(Q, D) stored vectors of one image."""
        return np.stack([self._index.reconstruct(int(r)) for r in self._row_ids(np.array([image_id]))])

    def iter_vectors(self, chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (image ids (n,), vectors (n, Q, D)) in storage order, `chunk` images at a time.

        An image's Q rows are added together and removal keeps row order, so they stay adjacent.
        """
        row_ids = faiss.vector_to_array(self._index.id_map)
        step = chunk * self.queries
        for start in range(0, self.ntotal, step):
            count = min(step, self.ntotal - start)
            rows = self._index.index.reconstruct_n(start, count)  # (count, D)
            yield row_ids[start : start + count : self.queries] // self.queries, rows.reshape(
                -1, self.queries, self.dim
            )

    def all_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(image ids (n,), vectors (n, Q, D)) in id order; a copy."""
        chunks = list(self.iter_vectors())
        if not chunks:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.queries, self.dim), dtype=np.float32)
        ids = np.concatenate([c[0] for c in chunks])
        vectors = np.concatenate([c[1] for c in chunks])
        order = np.argsort(ids, kind="stable")
        return ids[order], vectors[order]

    # -- snapshots ----------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically: temp file, fsync, rename, fsync the folder."""
        payload = faiss.serialize_index(self._index).tobytes()
        header = {
            "generation": self.generation, "queries": self.queries, "dim": self.dim,
            "ntotal": self.ntotal, "blake2b": hashlib.blake2b(payload, digest_size=16).hexdigest(),
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(MAGIC + json.dumps(header).encode() + b"\n")
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    @classmethod
    def load(cls, path: Path, queries: int, dim: int) -> VectorIndex:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"no vector snapshot at {path}") from None
        if not data.startswith(MAGIC):
            raise SnapshotError("the vector snapshot has no valid header")
        try:
            line_end = data.index(b"\n", len(MAGIC))
            header = json.loads(data[len(MAGIC) : line_end])
            payload = data[line_end + 1 :]
        except ValueError:
            raise SnapshotError("the vector snapshot header is unreadable") from None
        if hashlib.blake2b(payload, digest_size=16).hexdigest() != header.get("blake2b"):
            raise SnapshotError("the vector snapshot is truncated or corrupt (checksum mismatch)")
        if (header["queries"], header["dim"]) != (queries, dim):
            raise SnapshotError("the vector snapshot holds vectors of another shape")
        index = cls(queries, dim)
        index._index = faiss.deserialize_index(np.frombuffer(payload, dtype=np.uint8))
        index.generation = int(header["generation"])
        if index.ntotal != header["ntotal"]:
            raise SnapshotError("the vector snapshot does not hold the rows its header says")
        return index

    # -- internals ----------------------------------------------------------------------------

    def _row_ids(self, image_ids: np.ndarray) -> np.ndarray:
        return (image_ids[:, None] * self.queries + np.arange(self.queries)[None, :]).reshape(-1)

    def _top_images(self, query, scores, row_ids, k, params) -> list[tuple[int, float]]:
        valid = row_ids >= 0
        scores, row_ids = scores[valid], row_ids[valid]
        best = _max_per_image(row_ids // self.queries, scores)
        if len(scores) == self.queries * k and len(best) >= k:
            kth = sorted(best.values(), reverse=True)[k - 1]
            if kth <= scores[-1]:
                # The k-th image ties with the last row fetched: rows of equal score may have
                # been cut. Fetch every row at or above that score so ties are ordered by id.
                radius = float(np.nextafter(np.float32(scores[-1]), np.float32(-np.inf)))
                _, dist, labels = self._index.range_search(query[None, :], radius, params=params)
                best = _max_per_image(labels // self.queries, dist)
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        return [(int(image), float(score)) for image, score in ranked[:k]]


def _max_per_image(images: np.ndarray, scores: np.ndarray) -> dict[int, float]:
    best: dict[int, float] = {}
    for image, score in zip(images.tolist(), scores.tolist(), strict=True):
        if score > best.get(image, -np.inf):
            best[image] = score
    return best
