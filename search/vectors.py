"""The vector index: multi-vector max-sim over every image's Q query vectors (FAISS).

Each image contributes Q rows with FAISS id `image_id * Q + q`. Two kinds:

- `exact`: every row, in float16 (the precision the catalog stores, so nothing is lost). A
  text query searches the top Q·k rows and keeps the max per image; that is exact, because
  every row scoring above the k-th image's best row belongs to one of the k-1 images ranked
  above it (at most Q rows each) or to that image itself. Ties at the boundary are resolved
  by a range search.
- `compressed`: product-quantised rows (IVF-PQ fast-scan, 4 bits per code, dim/8 codes), a
  first stage whose candidates are re-scored exactly from the stored vectors, which the
  caller supplies (`fetch`, from the catalog). See `compressed`.

Either kind is held in parts, one per FAISS thread, that one query searches at once
(`parts`: FAISS runs a single query on a single core). Results are ordered by (score desc,
image id asc). The index is a snapshot of the catalog: written to a temp file, fsynced,
renamed, and tagged with the catalog generation it covers. A snapshot that is corrupt
raises `SnapshotError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import faiss
import numpy as np

from . import compressed
from .errors import SearchError
from .files import write_atomically
from .parts import Parts

MAGIC = b"BLIP2IDX1\n"


class SnapshotError(SearchError):
    """The snapshot file is missing, truncated, corrupt, or for another vector shape."""


KINDS = ("exact", "compressed")
# fetch(ids, each=None) -> (the ids found, their (n, Q, D) float32 vectors, or `each` applied
# to every part of them, (m, Q, D) -> (m, ...), results concatenated)
Fetch = Callable[..., tuple[np.ndarray, np.ndarray]]


class VectorIndex:
    def __init__(self, queries: int, dim: int, kind: str = "exact", fetch: Fetch | None = None) -> None:
        if kind not in KINDS:
            raise SearchError(f"unknown index type {kind!r}: use one of {', '.join(KINDS)}")
        self.queries, self.dim, self.kind = queries, dim, kind
        self.generation = 0
        self.fetch = fetch  # the compressed kind re-scores its candidates from these vectors
        self.trained_on = 0  # images the compressed kind's training sample was drawn from
        # IndexIDMap2 keeps a reverse map (about 50 bytes a row) for reconstruct, which only
        # the exact kind needs; the compressed kind's inverted lists hold codes and 8-byte ids
        template = faiss.IndexIDMap2(_flat(dim)) if kind == "exact" else compressed.quantiser(dim)
        self._index = Parts.copies(template)  # one part per thread: see `parts`

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
        if not self._index.is_trained:
            self.train(vectors)
        self._index.add_with_ids(rows, self._row_ids(image_ids))

    @property
    def needs_training(self) -> bool:
        """A compressed index that now holds over 4x the images its quantiser was drawn from."""
        return self.kind == "compressed" and self.trained_on * 4 < len(self)

    def train(self, sample: np.ndarray, population: int | None = None) -> None:
        """Train an empty compressed index's quantiser on (n, Q, D) sample vectors, drawn
        evenly from `population` images (default: the sample is all of them)."""
        if self.kind == "compressed":
            self.trained_on = population or len(sample)
            trained = compressed.quantiser(self.dim, self.trained_on * self.queries)
            trained.train(_enough(np.ascontiguousarray(sample.reshape(-1, self.dim), dtype=np.float32)))
            self._index = Parts.copies(trained)  # every part a copy of one trained index

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
        if self.kind == "compressed":
            return compressed.search(self, text_vecs, k, allowed)
        selector = None
        available = self.ntotal
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            if len(allowed) == 0:
                return [[] for _ in text_vecs]
            selector = faiss.IDSelectorBatch(self._row_ids(allowed))
            available = min(available, len(allowed) * self.queries)
        rows = min(self.queries * k, available)
        scores, ids = self._index.search(text_vecs, rows, selector)
        return [self._top_images(text_vecs[i], scores[i], ids[i], k, selector) for i in range(len(text_vecs))]

    def top_rows(self, text_vecs: np.ndarray, rows: int) -> np.ndarray:
        """(T, rows) FAISS row ids of the best-scoring rows per text, -1 past the end."""
        return self._index.search(text_vecs, rows)[1]

    def vectors_of(self, image_id: int) -> np.ndarray:
        """(Q, D) stored vectors of one image."""
        if self.kind == "compressed":
            return self.fetch(np.array([image_id]))[1][0]
        return np.stack([self._index.reconstruct(int(r)) for r in self._row_ids(np.array([image_id]))])

    def iter_vectors(self, chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (image ids (n,), vectors (n, Q, D)) in storage order, `chunk` images at a time;
        exact kind only (the compressed one holds codes, not vectors).

        An image's Q rows are added together, to one part, and removal keeps row order, so
        they stay adjacent.
        """
        if self.kind != "exact":
            raise SearchError("a compressed index holds no vectors to iterate; read the catalog's")
        step = chunk * self.queries
        for part in self._index.parts:
            row_ids = faiss.vector_to_array(part.id_map)
            for start in range(0, part.ntotal, step):
                count = min(step, part.ntotal - start)
                rows = part.index.reconstruct_n(start, count)  # (count, D)
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
        payloads = self._index.serialize()  # written part by part, never joined into one copy
        digest = hashlib.blake2b(digest_size=16)
        for payload in payloads:
            digest.update(payload)
        header = {
            "generation": self.generation, "queries": self.queries, "dim": self.dim, "kind": self.kind,
            "trained_on": self.trained_on, "ntotal": self.ntotal, "parts": [len(p) for p in payloads],
            "blake2b": digest.hexdigest(),
        }

        def write(handle) -> None:
            handle.write(MAGIC + json.dumps(header).encode() + b"\n")
            for payload in payloads:
                handle.write(payload)

        write_atomically(path, write)

    @classmethod
    def load(cls, path: Path, queries: int, dim: int, fetch: Fetch | None = None) -> VectorIndex:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"no vector snapshot at {path}") from None
        if not data.startswith(MAGIC):
            raise SnapshotError("the vector snapshot has no valid header")
        try:
            line_end = data.index(b"\n", len(MAGIC))
            header = json.loads(data[len(MAGIC) : line_end])
            payload = memoryview(data)[line_end + 1 :]  # views, not copies, of the file's bytes
        except ValueError:
            raise SnapshotError("the vector snapshot header is unreadable") from None
        if hashlib.blake2b(payload, digest_size=16).hexdigest() != header.get("blake2b"):
            raise SnapshotError("the vector snapshot is truncated or corrupt (checksum mismatch)")
        if (header["queries"], header["dim"]) != (queries, dim):
            raise SnapshotError("the vector snapshot holds vectors of another shape")
        index = cls(queries, dim, header.get("kind", "exact"), fetch)
        sizes = header.get("parts", [len(payload)])  # a snapshot from before parts: one
        starts = np.cumsum([0, *sizes])
        index._index = Parts.deserialize([payload[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)])
        index.generation, index.trained_on = int(header["generation"]), int(header.get("trained_on", 0))
        if index.ntotal != header["ntotal"]:
            raise SnapshotError("the vector snapshot does not hold the rows its header says")
        return index

    # -- internals ----------------------------------------------------------------------------

    def _row_ids(self, image_ids: np.ndarray) -> np.ndarray:
        return (image_ids[:, None] * self.queries + np.arange(self.queries)[None, :]).reshape(-1)

    def _top_images(self, query, scores, row_ids, k, selector) -> list[tuple[int, float]]:
        valid = row_ids >= 0
        scores, row_ids = scores[valid], row_ids[valid]
        best = _max_per_image(row_ids // self.queries, scores)
        if len(scores) == self.queries * k and len(best) >= k:
            kth = sorted(best.values(), reverse=True)[k - 1]
            if kth <= scores[-1]:
                # The k-th image ties with the last row fetched: rows of equal score may have
                # been cut. Fetch every row at or above that score so ties are ordered by id.
                radius = float(np.nextafter(np.float32(scores[-1]), np.float32(-np.inf)))
                dist, labels = self._index.range_search(query[None, :], radius, selector)
                best = _max_per_image(labels // self.queries, dist)
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        return [(int(image), float(score)) for image, score in ranked[:k]]


def memory_fetch(store: Mapping[int, np.ndarray]) -> Fetch:
    """A `Fetch` over (Q, D) vectors held in memory by image id (tests, sizing experiments)."""

    def fetch(ids: np.ndarray, each=None) -> tuple[np.ndarray, np.ndarray]:
        found = np.array(sorted({int(i) for i in ids} & store.keys()), dtype=np.int64)
        first = next(iter(store.values()))
        vectors = np.stack([store[i] for i in found.tolist()]) if len(found) else np.zeros((0, *first.shape))
        return found, vectors if each is None else each(vectors)

    return fetch


def _max_per_image(images: np.ndarray, scores: np.ndarray) -> dict[int, float]:
    best: dict[int, float] = {}
    for image, score in zip(images.tolist(), scores.tolist(), strict=True):
        if score > best.get(image, -np.inf):
            best[image] = score
    return best


def _flat(dim: int) -> faiss.Index:
    """Every row in float16: what the catalog stores, in half the memory of float32."""
    return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)


def _enough(rows: np.ndarray, least: int = 256) -> np.ndarray:
    """Rows repeated up to `least`: k-means needs at least as many points as centroids (16
    per sub-quantizer), which a collection of a few images does not have."""
    return rows if len(rows) >= least else np.resize(rows, (least, rows.shape[1]))
