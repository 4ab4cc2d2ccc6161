"""The vector index a collection holds in memory, and its snapshot file.

Two kinds, both held in slices, one per FAISS thread (`slices`):

- `exact`: every row, in float32 (the catalog's float16 values, so nothing is lost), where
  one matmul scores them all against an image's Q vectors (`score_images`; similar images
  read the rows for an int8 first stage too, `row_blocks`); a float16 copy would halve the
  memory, but converting it for that matmul cost three times the matmul on a 2-core CPU. A
  text query takes the top Q·k rows (`exact.best_rows`) and keeps the max per image; that is exact, because
  every row scoring above the k-th image's best row belongs to one of the k-1 images ranked
  above it (at most Q rows each) or to that image itself. Ties at the boundary are resolved
  by a range search. Candidates come with their exact scores.
- `compressed`: product-quantised rows (`compressed`), candidates without scores.

Results are ordered by (score desc, image id asc). The snapshot is written to a temp file,
fsynced and renamed, tagged with the catalog generation it covers; a corrupt one raises
`SnapshotError`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from ...errors import SearchError
from ..atomic import write_atomically
from . import compressed, exact
from .base import KINDS, NONE, Candidates, SnapshotError, as_rows, row_ids
from .slices import Slices

MAGIC = b"BLIP2IDX1\n"


class MemoryIndex:
    def __init__(self, queries: int, dim: int, kind: str = "exact",
                 rows_per_list: int = compressed.ROWS_PER_LIST) -> None:
        if kind not in KINDS:
            raise SearchError(f"unknown index type {kind!r}: use one of {', '.join(KINDS)}")
        self.queries, self.dim, self.kind = queries, dim, kind
        self.rows_per_list = rows_per_list  # compressed: sizes its inverted lists (`compressed.lists_for`)
        self.generation = 0  # the catalog generation this index covers
        self.trained_on = 0  # images the compressed kind's training sample was drawn from
        self.per_hit: int | None = None  # compressed: candidates a result (None: sized to the index)
        # IndexIDMap2 keeps a reverse map (about 50 bytes a row) for reconstruct, which only
        # the exact kind needs; the compressed kind's inverted lists hold codes and 8-byte ids
        template = faiss.IndexIDMap2(_flat(dim)) if kind == "exact" else compressed.quantiser(dim)
        self._slices = Slices.copies(template)

    @property
    def ntotal(self) -> int:
        return self._slices.ntotal

    def __len__(self) -> int:
        return self.ntotal // self.queries

    @property
    def slice_sizes(self) -> list[int]:
        """Rows each slice holds."""
        return [piece.ntotal for piece in self._slices.slices]

    @property
    def lists(self) -> int:
        """Inverted lists of the compressed kind's first stage (1 for exact)."""
        return getattr(self._slices.slices[0], "nlist", 1)

    def add(self, image_ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) image ids with their (n, Q, D) vectors (float16 as stored, or float32);
        ids already present are replaced."""
        image_ids = np.asarray(image_ids, dtype=np.int64)
        if len(image_ids) == 0:
            return
        self.remove(image_ids)
        if not self._slices.is_trained:
            self.train(vectors)
        rows = np.ascontiguousarray(vectors.reshape(-1, self.dim), dtype=np.float32)  # what FAISS takes
        self._slices.add_with_ids(rows, row_ids(image_ids, self.queries))

    @property
    def needs_training(self) -> bool:
        """A compressed index that now holds over 4x the images its quantiser was drawn from."""
        return self.kind == "compressed" and self.trained_on * 4 < len(self)

    def train(self, sample: np.ndarray, population: int | None = None) -> None:
        """Train an empty compressed index's quantiser on (n, Q, D) sample vectors, drawn
        evenly from `population` images (default: the sample is all of them)."""
        if self.kind == "compressed":
            self.trained_on = population or len(sample)
            trained = compressed.train(self.dim, sample.reshape(-1, self.dim), self.trained_on * self.queries,
                                       self.rows_per_list)
            self._slices = Slices.copies(trained)  # every slice a copy of one trained index

    def remove(self, image_ids: np.ndarray) -> None:
        image_ids = np.asarray(image_ids, dtype=np.int64)
        if len(image_ids) and self.ntotal:
            self._slices.remove_ids(faiss.IDSelectorBatch(row_ids(image_ids, self.queries)))

    def search(self, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None = None,
               depth: int | None = None) -> list[Candidates]:
        text_vecs = as_rows(text_vecs)
        if k <= 0 or self.ntotal == 0:
            return [NONE for _ in text_vecs]
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
        if self.kind == "compressed":
            return compressed.candidates(self._slices, self.queries, text_vecs, k, allowed, self.per_hit,
                                         depth)
        selector, available = None, self.ntotal
        if allowed is not None:
            if len(allowed) == 0:
                return [NONE for _ in text_vecs]
            selector = faiss.IDSelectorBatch(row_ids(allowed, self.queries))
            available = min(available, len(allowed) * self.queries)
        rows = min(self.queries * k, available)
        if selector is None:
            scores, ids = exact.best_rows(self._slices, text_vecs, rows)
        else:
            scores, ids = self._slices.search(text_vecs, rows, selector)
        return [self._top_images(text_vecs[i], scores[i], ids[i], k, selector) for i in range(len(text_vecs))]

    def row_blocks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each slice's (image ids (n,), rows (n * Q, D) float32): views of its memory, valid
        while this index lives and is not changed (exact kind only)."""
        if self.kind != "exact":
            raise SearchError("a compressed index holds no vectors to score; read the catalog's")
        return [(exact.ids_of(piece)[:: self.queries] // self.queries, exact.rows_of(piece))
                for piece in self._slices.slices if piece.ntotal]

    def score_images(self, query: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        """Every image's (ids, scores) against the (Q', D) `query` vectors: the mean over them
        of the max over the image's rows, its rows read in place, `chunk` images a matmul,
        each slice on a thread of its own (exact kind only)."""
        if self.kind != "exact":
            raise SearchError("a compressed index holds no vectors to score; read the catalog's")
        query = np.ascontiguousarray(query, dtype=np.float32)

        def score(piece) -> tuple[np.ndarray, np.ndarray]:
            rows = exact.rows_of(piece)
            scores = np.empty(piece.ntotal // self.queries, dtype=np.float32)
            for start in range(0, len(rows), chunk * self.queries):
                block = rows[start : start + chunk * self.queries] @ query.T  # (rows, Q')
                first = start // self.queries
                scores[first : first + len(block) // self.queries] = block.reshape(
                    -1, self.queries, len(query)).max(axis=1).mean(axis=1)
            return exact.ids_of(piece)[:: self.queries] // self.queries, scores

        found = self._slices.map(score)
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate([ids for ids, _ in found]), np.concatenate([scores for _, scores in found])

    def iter_vectors(self, chunk: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (image ids (n,), vectors (n, Q, D) float32) in storage order, `chunk` images
        at a time; exact kind only (the compressed one holds codes, not vectors).

        An image's Q rows are added together, to one slice, and removal keeps row order, so
        they stay adjacent."""
        if self.kind != "exact":
            raise SearchError("a compressed index holds no vectors to iterate; read the catalog's")
        step = chunk * self.queries
        for piece in self._slices.slices:
            ids = faiss.vector_to_array(piece.id_map)
            for start in range(0, piece.ntotal, step):
                count = min(step, piece.ntotal - start)
                rows = piece.index.reconstruct_n(start, count)  # (count, D)
                yield ids[start : start + count : self.queries] // self.queries, rows.reshape(
                    -1, self.queries, self.dim)

    # -- snapshots ----------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically: temp file, fsync, rename, fsync the folder."""
        payloads = self._slices.serialize()  # written slice by slice, never joined into one copy
        digest = hashlib.blake2b(digest_size=16)
        for payload in payloads:
            digest.update(payload)
        header = {
            "generation": self.generation, "queries": self.queries, "dim": self.dim, "kind": self.kind,
            # "parts": each slice's bytes (the file format's name for them, kept for old snapshots)
            "trained_on": self.trained_on, "ntotal": self.ntotal, "parts": [len(p) for p in payloads],
            "blake2b": digest.hexdigest(),
        }

        def write(handle) -> None:
            handle.write(MAGIC + json.dumps(header).encode() + b"\n")
            for payload in payloads:
                handle.write(payload)

        write_atomically(path, write)

    @classmethod
    def load(cls, path: Path, queries: int, dim: int) -> MemoryIndex:
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
        index = cls(queries, dim, header.get("kind", "exact"))
        sizes = header.get("parts", [len(payload)])  # a slice's bytes each; one before slices
        starts = np.cumsum([0, *sizes])
        pieces = [payload[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
        index._slices = Slices.deserialize(pieces)
        if index.kind == "exact" and not all(_is_flat(piece) for piece in index._slices.slices):
            raise SnapshotError("the vector snapshot holds float16 rows, an older layout")
        index.generation, index.trained_on = int(header["generation"]), int(header.get("trained_on", 0))
        if index.ntotal != header["ntotal"]:
            raise SnapshotError("the vector snapshot does not hold the rows its header says")
        return index

    # -- internals ----------------------------------------------------------------------------

    def _top_images(self, query, scores, found, k, selector) -> Candidates:
        valid = found >= 0
        scores, found = scores[valid], found[valid]
        best = _max_per_image(found // self.queries, scores)
        if len(scores) == self.queries * k and len(best) >= k:
            kth = sorted(best.values(), reverse=True)[k - 1]
            if kth <= scores[-1]:
                # The k-th image ties with the last row fetched: rows of equal score may have
                # been cut. Fetch every row at or above that score so ties are ordered by id.
                radius = float(np.nextafter(np.float32(scores[-1]), np.float32(-np.inf)))
                dist, labels = self._slices.range_search(query[None, :], radius, selector)
                best = _max_per_image(labels // self.queries, dist)
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]
        return Candidates(np.array([i for i, _ in ranked], dtype=np.int64),
                          np.array([s for _, s in ranked], dtype=np.float32))


def _max_per_image(images: np.ndarray, scores: np.ndarray) -> dict[int, float]:
    best: dict[int, float] = {}
    for image, score in zip(images.tolist(), scores.tolist(), strict=True):
        if score > best.get(image, -np.inf):
            best[image] = score
    return best


def _flat(dim: int) -> faiss.Index:
    """Every row in float32 (see the module's docstring)."""
    return faiss.IndexFlatIP(dim)


def _is_flat(piece: faiss.Index) -> bool:
    return isinstance(faiss.downcast_index(piece.index), faiss.IndexFlat)

