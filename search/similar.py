"""Similar images (by an indexed image, a file or pixels), and what every query shares: the
indexed record behind an id, and hits from ranked ids. `Searcher` builds on it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

import numpy as np
from PIL import Image

from . import scoring
from .collection import Collection
from .errors import InputError, NotFound
from .images import open_image
from .records import ImageRecord
from .schemas import Hit

SIMILAR_DEPTH = 16  # similar: first-stage images asked for per query vector, per result wanted

Timer = Callable[[str], AbstractContextManager]


def _untimed(stage: str) -> AbstractContextManager:
    return nullcontext()


class SimilarImages:
    """`timer(stage)` wraps each stage (text_encode, image_encode, vector_search, rerank,
    generation) so a server can record where time goes; by default nothing is recorded."""

    def __init__(self, collection: Collection, engine, timer: Timer = _untimed) -> None:
        self.collection = collection
        self.engine = engine
        self.timer = timer

    def similar(self, *, image: Image.Image | None = None, image_id: int | None = None,
                k: int = 10, offset: int = 0, exhaustive: bool = False) -> list[Hit]:
        """Images ranked by the mean over the query image's Q vectors of the max cosine
        against the candidate's Q vectors; an indexed query image is left out. The vector
        index proposes candidates for each of the query's vectors and their union is scored
        exactly (`exhaustive`: every image is, the reference the benchmark compares with)."""
        if (image is None) == (image_id is None):
            raise InputError("give an image or an image id")
        if image_id is not None:
            query = self.stored_vectors(image_id)
        else:
            with self.timer("image_encode"):
                query = self.engine.embed_images([image])[0]
        want = offset + k + (image_id is not None)
        with self.timer("vector_search"):
            scored = (self._scan_similar if exhaustive else self._similar)(query, want)
        ranked = [item for item in scored if item[0] != image_id][:want]
        return self._hits(ranked)[offset : offset + k]

    def similar_to_file(self, path: str, k: int = 10) -> list[Hit]:
        """Similar to the image at `path`: by its id when it is indexed (and left out of its
        own results), else by its pixels."""
        record = self.collection.image_at(path)
        if record is not None and record.status == "ok":
            return self.similar(image_id=record.id, k=k)
        return self.similar(image=open_image(path), k=k)

    def record(self, image_id: int) -> ImageRecord:
        """The indexed image `image_id`, or NotFound saying why not."""
        record = self.collection.image(image_id)
        if record is None:
            raise NotFound(f"no indexed image with id {image_id}")
        if record.status != "ok":
            raise NotFound(f"image {image_id} ({record.path}) could not be indexed: {record.error}")
        return record

    def stored_vectors(self, image_id: int) -> np.ndarray:
        """(Q, D) float16: the indexed image's stored vectors, or NotFound saying why not."""
        self.record(image_id)
        vectors = self.collection.vectors_of(image_id)
        if vectors is None:
            raise NotFound(f"image {image_id} has no stored vectors")
        return vectors

    def candidates_like(self, query: np.ndarray, want: int,
                        allowed: np.ndarray | None = None) -> np.ndarray:
        """The union of the first stage's best `SIMILAR_DEPTH` x `want` images for each of the
        (Q, D) `query` vectors: candidates for an image-to-image score."""
        depth = SIMILAR_DEPTH * want
        firsts = self.collection.candidates(np.asarray(query, dtype=np.float32), depth, allowed, depth=depth)
        if not firsts:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([first.ids for first in firsts]))

    def _similar(self, query: np.ndarray, want: int) -> list[tuple[int, float]]:
        """The first stage asked with each of the query's (Q, D) vectors for its best
        `SIMILAR_DEPTH` x `want` images; their union scored exactly from the stored vectors.
        The union, not the images most vectors propose: with four-bit codes the true
        neighbours are often proposed by few (BENCHMARKS.md has the figures)."""
        ids = self.candidates_like(query, want)
        if not len(ids):
            return []
        found, scores = self.collection.read_vectors(ids, scoring.image_similarity(query))
        return scoring.top(found, scores, want)

    def _scan_similar(self, query: np.ndarray, want: int) -> list[tuple[int, float]]:
        """Every stored image scored: the exact reference."""
        score = scoring.image_similarity(query)
        scored: list[tuple[int, float]] = []
        for ids, vectors in self.collection.iter_vectors():
            scored += scoring.top(ids, score(vectors), want)
        return sorted(scored, key=lambda item: (-item[1], item[0]))[:want]

    def _hits(self, ranked: Iterable[tuple[int, float | None]]) -> list[Hit]:
        ranked = list(ranked)
        records = self.collection.images(image for image, _ in ranked)
        return [Hit(id=image, path=records[image].path, score=score, caption=records[image].caption,
                    taken_at=taken_at(records[image]), text=records[image].text)
                for image, score in ranked if image in records]



def taken_at(record: ImageRecord) -> str:
    """When the picture was taken (EXIF), else when its file was last modified, ISO 8601."""
    when = record.taken_at or datetime.fromtimestamp(record.mtime)
    return when.isoformat(timespec="seconds")
