"""Queries over a collection: text search, similar images, and questions about a hit.

Text search takes the vector index's first stage and ranks exactly (`scoring`: BLIP-2's ITC,
the max over query tokens, re-scored from the stored vectors where the first stage holds
codes), optionally reranks the top N with the match head (ITM) as the BLIP-2 paper does,
and can fuse the caption full-text rank by reciprocal rank fusion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from PIL import Image

from . import scoring
from .collection import Collection
from .errors import ImageError, InputError, NotFound, SearchError
from .images import open_image
from .prompts import Turn
from .records import ImageRecord
from .schemas import Hit

RRF_K = 60  # the usual reciprocal-rank-fusion constant
SIMILAR_DEPTH = 16  # similar: first-stage images asked for per query vector, per result wanted
RERANK_BATCH = 16
ACCELERATOR_RERANK_TOP = 128  # hits the match head reranks on a GPU by default, as the BLIP-2 paper


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10
    offset: int = 0
    rerank: bool = False
    rerank_top: int | None = None  # None: the page shown on a CPU, 128 on an accelerator
    min_match: float | None = None  # drop hits below this match probability; implies rerank
    hybrid: bool = False
    path_prefix: str | None = None
    after: datetime | None = None
    before: datetime | None = None


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
        outcome = self.search_many([(query, options)])[0]
        if isinstance(outcome, SearchError):
            raise outcome
        return outcome

    def search_many(self, requests: Sequence[tuple[str, SearchOptions]]) -> list[list[Hit] | SearchError]:
        """Several searches with their texts encoded as one batch (a server gathers the
        requests that wait: one text-encoder pass for eight queries costs about twice one).
        Each request gets its hits, or the error that is its own."""
        outcomes: list[list[Hit] | SearchError] = [[] for _ in requests]
        valid: list[tuple[int, str]] = []
        for i, (query, options) in enumerate(requests):
            try:
                valid.append((i, _checked(query, options)))
            except SearchError as exc:
                outcomes[i] = exc
        if not valid or self.collection.model is None:
            return outcomes  # nothing indexed yet: no hits
        with self.timer("text_encode"):
            text_vecs = self.engine.embed_texts([query for _, query in valid])
        for (i, query), text_vec in zip(valid, text_vecs, strict=True):
            try:
                outcomes[i] = self._search(query, text_vec, requests[i][1])
            except SearchError as exc:
                outcomes[i] = exc
        return outcomes

    def _search(self, query: str, text_vec: np.ndarray, options: SearchOptions) -> list[Hit]:
        rerank = options.rerank or options.min_match is not None
        depth = options.offset + options.k
        depth = max(depth, self.rerank_top(options)) if rerank else depth
        allowed = self._allowed(options)
        with self.timer("vector_search"):
            ranked = self.nearest(text_vec[None], depth, allowed)[0]
            if options.hybrid:
                ranked = self._fuse(ranked, query, depth, allowed)
            hits = self._hits(ranked)
        if rerank:
            with self.timer("rerank"):
                hits = self._rerank(hits, query)
            if options.min_match is not None:
                hits = [hit for hit in hits if hit.match >= options.min_match]
        return hits[options.offset : options.offset + options.k]

    def rerank_top(self, options: SearchOptions) -> int:
        """Hits the match head scores: `options.rerank_top`, else what the hardware affords.
        On a CPU that is the page shown (at real size the head took 32 ms a hit with stored
        features, 1.3 s without: BENCHMARKS.md), on an accelerator the paper's 128."""
        if options.rerank_top is not None:
            return options.rerank_top
        on_cpu = self.engine.device.type == "cpu"
        return options.offset + options.k if on_cpu else ACCELERATOR_RERANK_TOP

    def match(self, query: str, ids: Sequence[int]) -> dict[int, float]:
        """The match head's P(match) of each of `ids` with `query`: from the image's stored
        features when it has them (the Q-Former alone), else from its file (the image encoder
        too). An image that is neither indexed nor readable is left out."""
        query = query.strip()
        if not query:
            raise InputError("the query is empty")
        ids = list(dict.fromkeys(int(i) for i in ids))
        stored = self.collection.features(ids, self.engine.feature_key("retrieval"))
        pictures = dict(self._pictures([i for i in ids if i not in stored]))
        sources = [([i for i in ids if i in stored],
                    lambda chunk: self.engine.from_features([stored[i] for i in chunk], "retrieval")),
                   (list(pictures), lambda chunk: [pictures[i] for i in chunk])]
        matches: dict[int, float] = {}
        for found, batch_of in sources:  # a batch never mixes stored features and pictures
            for start in range(0, len(found), RERANK_BATCH):
                chunk = found[start : start + RERANK_BATCH]
                matches.update(zip(chunk, self.engine.itm(batch_of(chunk), query).tolist(), strict=True))
        return {i: float(matches[i]) for i in ids if i in matches}

    def nearest(self, text_vecs: np.ndarray, k: int,
                allowed: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        """For each (D,) text vector, the exact top k (image id, max-sim) among `allowed`: the
        first stage's candidates, re-scored from the stored vectors where it holds codes."""
        firsts = self.collection.candidates(text_vecs, k, allowed)
        return [scoring.ranked(first, text, k, self.collection.read_vectors)
                for first, text in zip(firsts, np.atleast_2d(text_vecs), strict=False)]

    def similar(self, *, image: Image.Image | None = None, image_id: int | None = None,
                k: int = 10, offset: int = 0, exhaustive: bool = False) -> list[Hit]:
        """Images ranked by the mean over the query image's Q vectors of the max cosine
        against the candidate's Q vectors; an indexed query image is left out. The vector
        index proposes candidates for each of the query's vectors and their union is scored
        exactly (`exhaustive`: every image is, the reference the benchmark compares with)."""
        if (image is None) == (image_id is None):
            raise InputError("give an image or an image id")
        if image_id is not None:
            self.record(image_id)
            query = self.collection.vectors_of(image_id)
        else:
            with self.timer("image_encode"):
                query = self.engine.embed_images([image])[0]
        if query is None:
            raise NotFound(f"image {image_id} has no stored vectors")
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

    def ask(self, image_id: int, question: str, history: Sequence[Turn] = ()) -> str:
        """The decoder's answer; the image encoder is skipped when the image has stored features."""
        record = self.record(image_id)
        stored = self.collection.features([image_id], self.engine.feature_key("generation"))
        image = self.engine.from_features([stored[image_id]], "generation") if stored else None
        if image is None:
            try:
                image = open_image(record.path)
            except ImageError as exc:
                raise NotFound(f"image {image_id} ({record.path}) cannot be read: {exc}") from None
        with self.timer("generation"):
            return self.engine.ask(image, question, history)

    def record(self, image_id: int) -> ImageRecord:
        """The indexed image `image_id`, or NotFound saying why not."""
        record = self.collection.image(image_id)
        if record is None:
            raise NotFound(f"no indexed image with id {image_id}")
        if record.status != "ok":
            raise NotFound(f"image {image_id} ({record.path}) could not be indexed: {record.error}")
        return record

    # -- internals ----------------------------------------------------------------------------

    def _similar(self, query: np.ndarray, want: int) -> list[tuple[int, float]]:
        """The first stage asked with each of the query's (Q, D) vectors for its best
        `SIMILAR_DEPTH` x `want` images; their union scored exactly from the stored vectors.
        The union, not the images most vectors propose: with four-bit codes the true
        neighbours are often proposed by few (BENCHMARKS.md has the figures)."""
        depth = SIMILAR_DEPTH * want
        firsts = self.collection.candidates(np.asarray(query, dtype=np.float32), depth, depth=depth)
        if not firsts:
            return []
        ids = np.unique(np.concatenate([first.ids for first in firsts]))
        found, scores = self.collection.read_vectors(ids, scoring.image_similarity(query))
        return scoring.top(found, scores, want)

    def _scan_similar(self, query: np.ndarray, want: int) -> list[tuple[int, float]]:
        """Every stored image scored: the exact reference."""
        score = scoring.image_similarity(query)
        scored: list[tuple[int, float]] = []
        for ids, vectors in self.collection.iter_vectors():
            scored += scoring.top(ids, score(vectors), want)
        return sorted(scored, key=lambda item: (-item[1], item[0]))[:want]

    def _allowed(self, options: SearchOptions) -> np.ndarray | None:
        if not (options.path_prefix or options.after or options.before):
            return None
        return self.collection.filter_ids(path_prefix=options.path_prefix, after=options.after,
                                          before=options.before)

    def _fuse(self, ranked, query: str, depth: int, allowed) -> list[tuple[int, float]]:
        """Reciprocal rank fusion of the vector ranking and the caption full-text ranking."""
        text_ids = self.collection.caption_search(query, limit=depth)
        if allowed is not None:
            permitted = set(allowed.tolist())
            text_ids = [i for i in text_ids if i in permitted]
        fused: dict[int, float] = {}
        for ranking in ([image for image, _ in ranked], text_ids):
            for rank, image in enumerate(ranking, start=1):
                fused[image] = fused.get(image, 0.0) + 1.0 / (RRF_K + rank)
        return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:depth]

    def _hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        records = self.collection.images(image for image, _ in ranked)
        return [Hit(id=image, path=records[image].path, score=score, caption=records[image].caption)
                for image, score in ranked if image in records]

    def _rerank(self, hits: list[Hit], query: str) -> list[Hit]:
        """ITM match probability for each hit; hits whose file is gone are dropped."""
        matches = self.match(query, [hit.id for hit in hits])
        reranked = [hit.model_copy(update={"match": matches[hit.id]}) for hit in hits if hit.id in matches]
        return sorted(reranked, key=lambda hit: (-hit.match, -hit.score, hit.id))

    def _pictures(self, ids: list[int]) -> list[tuple[int, Image.Image]]:
        """(id, picture) of those of `ids` that are indexed and whose file reads."""
        records = self.collection.images(ids)
        pictures = []
        for image_id in ids:
            record = records.get(image_id)
            if record is None or record.status != "ok":
                continue
            try:
                pictures.append((image_id, open_image(record.path)))
            except ImageError:
                continue
        return pictures


def _checked(query: str, options: SearchOptions) -> str:
    """The query, stripped, or InputError when it or the options cannot be searched."""
    query = query.strip()
    if not query:
        raise InputError("the query is empty")
    if options.k < 1 or options.offset < 0 or (options.rerank_top or 1) < 1:
        raise InputError("k and rerank_top must be at least 1, and offset at least 0")
    return query
