"""Similar images: by an indexed image, a file or pixels, ranked by the mean over the query
image's Q vectors of the max cosine against each candidate's Q vectors."""

from __future__ import annotations

import itertools

import numpy as np
from PIL import Image

from ..collection import Collection
from ..errors import InputError
from ..media.images import open_image
from ..schemas import Hit, SearchResults
from ..store.shards import gaps
from ..store.vectors import MemoryIndex
from . import scoring
from .lookup import Lookup, Timer, untimed

SIMILAR_DEPTH = 16  # first-stage images asked for per query vector, per result wanted
SIMILAR_POOL = 512  # images the int8 first stage proposes on an exact index, at the least


class Similar:
    def __init__(self, collection: Collection, engine, lookup: Lookup, timer: Timer = untimed) -> None:
        self.collection, self.engine, self.lookup, self.timer = collection, engine, lookup, timer

    def find(self, *, image: Image.Image | None = None, image_id: int | None = None, at: float | None = None,
             k: int = 10, offset: int = 0, exhaustive: bool = False) -> list[Hit]:
        """Images and moments like `image` (pixels: the model embeds them) or the indexed
        `image_id` (its stored vectors: no model call; it is left out of its own results); a
        video's id stands for its moment at `at` seconds (its first without), and the video
        is left out. The vector index proposes candidates for each of the query's vectors and
        their union is scored exactly (`exhaustive`: every image is, the reference the
        benchmark compares with)."""
        if (image is None) == (image_id is None):
            raise InputError("give an image or an image id")
        own: set[int] = set()
        if image_id is not None:
            row = self.lookup.moment(image_id, at)
            query = self.lookup.vectors(row)
            own = {image_id, row, *self.collection.catalog.moments.children([image_id])}
        else:
            with self.timer("image_encode"):
                query = self.engine.embed_images([image])[0]
        want = (offset + k) * self.lookup.spread() + len(own)
        with self.timer("vector_search"):
            scored = (self._scan if exhaustive else self._union)(query, want)
        ranked = [item for item in scored if item[0] not in own][:want]
        return self.lookup.hits(ranked)[offset : offset + k]

    def results(self, query: str | int, **find) -> SearchResults:
        """`find(**find)` as a response for `query` (an id or a file's name): partial, naming
        the shards it went without, when a sharded collection answered without some."""
        with gaps() as missing:
            hits = self.find(**find)
        return partial(SearchResults(query=query, results=hits), missing)

    def to_file(self, path: str, k: int = 10) -> list[Hit]:
        """Like the image at `path`: by its id when it is indexed (and left out of its own
        results), else by its pixels."""
        record = self.collection.catalog.at_path(path)
        if record is not None and record.status == "ok":
            return self.find(image_id=record.id, k=k)
        return self.find(image=open_image(path), k=k)

    def candidates(self, query: np.ndarray, want: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """The union of the first stage's best `SIMILAR_DEPTH` x `want` images for each of the
        (Q, D) `query` vectors: candidates for an image-to-image score."""
        depth = SIMILAR_DEPTH * want
        firsts = self.collection.candidates(np.asarray(query, dtype=np.float32), depth, allowed, depth=depth)
        if not firsts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([first.ids for first in firsts]))

    def _union(self, query: np.ndarray, want: int) -> list[tuple[int, float]]:
        """The first stage asked with each of the query's (Q, D) vectors; the union of what
        they propose scored exactly from the stored vectors. The union, not the images most
        vectors propose: with four-bit codes the true neighbours are often proposed by few
        (BENCHMARKS.md has the figures). An exact index scores every image instead, in
        memory (`_every`): that costs less than reading the union's vectors."""
        if (sharded := self.collection.sharded) is not None:  # each shard scores all of its images
            return sharded.similar(query, want, depth=SIMILAR_DEPTH * want)
        exact = self.collection.exact_index
        if exact is not None:
            return scoring.top(*self._every(exact, query, max(SIMILAR_POOL, SIMILAR_DEPTH * want)), want)
        ids = self.candidates(query, want)
        if not len(ids):
            return []
        found, scores = self.collection.read_vectors(ids, scoring.image_similarity(query))
        return scoring.top(found, scores, want)

    def _every(self, exact: MemoryIndex, query: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) from an exact index: the `pool` images its int8 copy ranks first,
        scored exactly (`models.int8rows`), where the index holds over 4 times the pool; else
        every image, by one float32 product."""
        rows = self._int8_rows(exact) if 4 * pool <= len(exact) else None
        return exact.score_images(query) if rows is None else rows.best(query, pool)

    def _int8_rows(self, exact: MemoryIndex):
        """The int8 copy of `exact`'s rows (kept until the catalog changes), from the second
        similar query on: a one-shot command never pays for it (torch's import alone is a
        second or two, the copy 0.13 s at 10,000 images)."""
        asked = self.collection.memo(("similar asked", id(exact)), itertools.count)
        if next(asked) == 0:
            return None
        from ..models import int8rows  # torch: not imported by a command that never gets here

        if not int8rows.available():
            return None
        return self.collection.memo(("int8 rows", id(exact)),
                                    lambda: int8rows.Int8Rows(exact.row_blocks(), exact.queries, exact))

    def _scan(self, query: np.ndarray, want: int) -> list[tuple[int, float]]:
        """Every stored image scored: the exact reference."""
        score = scoring.image_similarity(query)
        scored: list[tuple[int, float]] = []
        for ids, vectors in self.collection.iter_vectors():
            scored += scoring.top(ids, score(vectors), want)
        return sorted(scored, key=lambda item: (-item[1], item[0]))[:want]


def partial(found: SearchResults, missing: set[int]) -> SearchResults:
    """`found`, saying which shards it went without, if any (a sharded collection's)."""
    if not missing:
        return found
    note = f"shard{'s' if len(missing) > 1 else ''} {', '.join(map(str, sorted(missing)))} did not answer: " \
           "these results are from the others"
    return found.model_copy(update={"partial": True, "missing_shards": sorted(missing),
                                    "notes": [*found.notes, note]})
