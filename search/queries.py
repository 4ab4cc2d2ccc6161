"""Queries over a collection: text search, similar images, and questions about a hit.

Text search ranks by BLIP-2's first-stage score (ITC: max over query tokens), optionally
reranks the top N with the match head (ITM) as the BLIP-2 paper does, and can fuse the
caption full-text rank by reciprocal rank fusion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image

from .collection import Collection
from .errors import ImageError, InputError, NotFound
from .images import open_image
from .prompts import Turn

RRF_K = 60  # the usual reciprocal-rank-fusion constant
RERANK_BATCH = 16


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10
    offset: int = 0
    rerank: bool = False
    rerank_top: int = 50
    min_match: float | None = None  # drop hits below this match probability; implies rerank
    hybrid: bool = False
    path_prefix: str | None = None
    after: datetime | None = None
    before: datetime | None = None


@dataclass
class Hit:
    id: int
    path: str
    score: float
    caption: str | None
    match: float | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "path": self.path, "score": self.score, "caption": self.caption,
                "match": self.match}


Timer = Callable[[str], AbstractContextManager]


def _untimed(stage: str) -> AbstractContextManager:
    return nullcontext()


class Searcher:
    """`timer(stage)` wraps each stage (text_encode, image_encode, vector_search, rerank,
    generation) so a server can record where time goes; by default nothing is recorded."""

    def __init__(self, collection: Collection, engine, timer: Timer = _untimed) -> None:
        self.collection = collection
        self.engine = engine
        self.timer = timer

    def search(self, query: str, options: SearchOptions = SearchOptions()) -> list[Hit]:
        query = query.strip()
        if not query:
            raise InputError("the query is empty")
        if options.k < 1 or options.offset < 0:
            raise InputError("k must be at least 1 and offset at least 0")
        rerank = options.rerank or options.min_match is not None
        depth = options.offset + options.k
        depth = max(depth, options.rerank_top) if rerank else depth
        if self.collection.vectors is None:
            return []  # nothing indexed yet
        allowed = self._allowed(options)
        with self.timer("text_encode"):
            text_vec = self.engine.embed_texts([query])[0]
        with self.timer("vector_search"):
            ranked = self.collection.vectors.search(text_vec, depth, allowed)[0]
            if options.hybrid:
                ranked = self._fuse(ranked, query, depth, allowed)
            hits = self._hits(ranked)
        if rerank:
            with self.timer("rerank"):
                hits = self._rerank(hits, query)
            if options.min_match is not None:
                hits = [hit for hit in hits if hit.match >= options.min_match]
        return hits[options.offset : options.offset + options.k]

    def similar(self, *, image: Image.Image | None = None, image_id: int | None = None,
                k: int = 10, offset: int = 0) -> list[Hit]:
        """Images ranked by the mean over the query image's Q vectors of the max cosine
        against the candidate's Q vectors; an indexed query image is left out."""
        if (image is None) == (image_id is None):
            raise InputError("give an image or an image id")
        if image_id is not None:
            self.record(image_id)
            query = self.collection.vectors.vectors_of(image_id)
        else:
            with self.timer("image_encode"):
                query = self.engine.embed_images([image])[0]
        if self.collection.vectors is None:
            return []
        want = offset + k + (image_id is not None)
        scored: list[tuple[int, float]] = []
        with self.timer("vector_search"):
            for ids, vectors in self.collection.iter_vectors():
                # (n, Q_candidate, Q_query) -> max over the candidate's vectors -> mean over the query's
                scores = np.einsum("ncd,qd->ncq", vectors, query).max(axis=1).mean(axis=1)
                top = np.argsort(-scores, kind="stable")[:want]
                scored += [(int(ids[i]), float(scores[i])) for i in top]
        scored.sort(key=lambda item: (-item[1], item[0]))
        ranked = [item for item in scored if item[0] != image_id][: want]
        return self._hits(ranked)[offset : offset + k]

    def ask(self, image_id: int, question: str, history: Sequence[Turn] = ()) -> str:
        record = self.record(image_id)
        try:
            image = open_image(record.path)
        except ImageError as exc:
            raise NotFound(f"image {image_id} ({record.path}) cannot be read: {exc}") from None
        with self.timer("generation"):
            return self.engine.ask(image, question, history)

    def record(self, image_id: int):
        record = self.collection.catalog.get(image_id)
        if record is None:
            raise NotFound(f"no indexed image with id {image_id}")
        if record.status != "ok":
            raise NotFound(f"image {image_id} ({record.path}) could not be indexed: {record.error}")
        return record

    # -- internals ----------------------------------------------------------------------------

    def _allowed(self, options: SearchOptions) -> np.ndarray | None:
        if not (options.path_prefix or options.after or options.before):
            return None
        return self.collection.catalog.filter_ids(
            path_prefix=options.path_prefix, after=options.after, before=options.before
        )

    def _fuse(self, ranked, query: str, depth: int, allowed) -> list[tuple[int, float]]:
        """Reciprocal rank fusion of the vector ranking and the caption full-text ranking."""
        text_ids = self.collection.catalog.caption_search(query, limit=depth)
        if allowed is not None:
            permitted = set(allowed.tolist())
            text_ids = [i for i in text_ids if i in permitted]
        fused: dict[int, float] = {}
        for ranking in ([image for image, _ in ranked], text_ids):
            for rank, image in enumerate(ranking, start=1):
                fused[image] = fused.get(image, 0.0) + 1.0 / (RRF_K + rank)
        return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:depth]

    def _hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        records = self.collection.catalog.get_many(image for image, _ in ranked)
        return [Hit(image, records[image].path, score, records[image].caption)
                for image, score in ranked if image in records]

    def _rerank(self, hits: list[Hit], query: str) -> list[Hit]:
        """ITM match probability for each hit; hits whose file is gone are dropped."""
        readable = []
        for hit in hits:
            try:
                readable.append((hit, open_image(hit.path)))
            except ImageError:
                continue
        for start in range(0, len(readable), RERANK_BATCH):
            chunk = readable[start : start + RERANK_BATCH]
            matches = self.engine.itm([image for _, image in chunk], query)
            for (hit, _), match in zip(chunk, matches, strict=True):
                hit.match = float(match)
        reranked = [hit for hit, _ in readable]
        return sorted(reranked, key=lambda hit: (-hit.match, -hit.score, hit.id))
