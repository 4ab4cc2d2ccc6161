"""Queries over a collection: searches in the query language (`querylang`), and the match
head's probabilities and the decoder's answers about hits.

A search takes the vector index's first stage for each `+` term and ranks the union exactly
(`scoring`: a text term's score is BLIP-2's ITC, the max over the image's query vectors; an
image term's is `similar`'s; the query's is the weighted sum, `-` terms subtracted). It can
fuse the full-text ranks of captions and of the text read in images (OCR) by reciprocal
rank fusion, rerank with the match head (ITM)
as the BLIP-2 paper does, or keep the hits the head calls a match and order them by date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from . import querylang, scoring, textmatch, where
from .errors import InputError, SearchError
from .hits import HitQuestions
from .querylang import Query
from .records import Selection
from .schemas import Hit, SearchResults

RRF_K = 60  # the usual reciprocal-rank-fusion constant
TEXT_WEIGHT = 2.0  # hybrid: the text read in an image ranks only images holding the words, a surer sign
# than a rank among captions or vectors (every image has one): its ranks count twice
RERANK_BATCH = 16
ACCELERATOR_RERANK_TOP = 128  # hits the match head reranks on a GPU by default, as the BLIP-2 paper
DATE_CANDIDATES = 200  # first-stage hits a date order considers by default
DATE_MIN_MATCH = 0.5  # the match probability a hit needs to be listed in a date order, by default
POOL = 4  # a query of several terms: first-stage images asked for a term, per hit wanted
NO_TEXT = "text: matches only images whose text was read: this index has {} not read yet (run index again)"

Sort = Literal["relevance", "newest", "oldest"]


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
    sort: Sort = "relevance"  # newest/oldest: the candidates that match, by date
    candidates: int | None = None  # first-stage hits a date order or where considers (default 200)
    where: tuple[str, ...] = ()  # QUESTION=ANSWER: hits whose answer to QUESTION is ANSWER


class Searcher(HitQuestions):
    def search(self, query: str, options: SearchOptions = SearchOptions()) -> list[Hit]:
        return self.find(query, options).results

    def find(self, query: str, options: SearchOptions = SearchOptions()) -> SearchResults:
        """The hits of `query` with the notes that go with them (SearchResults)."""
        outcome = self.search_many([(query, options)])[0]
        if isinstance(outcome, SearchError):
            raise outcome
        return outcome

    def search_many(self, requests: Sequence[tuple[str, SearchOptions]]) -> list[SearchResults | SearchError]:
        """Several searches with their texts encoded as one batch (a server gathers the
        requests that wait: one text-encoder pass for eight queries costs about twice one).
        Each request gets its results, or the error that is its own."""
        outcomes: list[SearchResults | SearchError] = [SearchResults(query=q, results=[])
                                                        for q, _ in requests]
        valid: list[tuple[int, Query, list[where.Where]]] = []
        for i, (query, options) in enumerate(requests):
            try:
                valid.append((i, *check(query, options)))
            except SearchError as exc:
                outcomes[i] = exc
        if self.collection.model is None:
            return outcomes  # nothing indexed yet: no hits
        texts = list(dict.fromkeys(term.text for _, query, _ in valid for term in query.terms if term.text))
        if texts:
            with self.timer("text_encode"):
                encoded = dict(zip(texts, self.engine.embed_texts(texts), strict=True))
        for i, query, conditions in valid:
            try:
                outcomes[i] = self._search(query, conditions, encoded if texts else {}, *requests[i])
            except SearchError as exc:
                outcomes[i] = exc
        return outcomes

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
        matches: dict[int, float] = {}
        for chunk, batch in self.batches(ids, "retrieval", RERANK_BATCH):
            matches.update(zip(chunk, self.engine.itm(batch, query).tolist(), strict=True))
        return {i: float(matches[i]) for i in ids if i in matches}

    def nearest(self, text_vecs: np.ndarray, k: int,
                allowed: np.ndarray | None = None) -> list[list[tuple[int, float]]]:
        """For each (D,) text vector, the exact top k (image id, max-sim) among `allowed`: the
        first stage's candidates, re-scored from the stored vectors where it holds codes."""
        firsts = self.collection.candidates(text_vecs, k, allowed)
        return [scoring.ranked(first, text, k, self.collection.read_vectors)
                for first, text in zip(firsts, np.atleast_2d(text_vecs), strict=False)]

    # -- internals ----------------------------------------------------------------------------

    def _search(self, query: Query, conditions: list[where.Where], encoded: dict[str, np.ndarray],
                text: str, options: SearchOptions) -> SearchResults:
        selection = self._selection(query, options)
        allowed = self.collection.filter_ids(selection) if selection else None
        notes = self._notes(selection)
        if not query.terms:  # filters alone: a listing, newest first (text: best read first)
            page = self._marked(self._listing(selection, options), query, options)
            return SearchResults(query=text, results=page, notes=notes)
        dated = options.sort != "relevance"
        matched = options.rerank or options.min_match is not None or dated
        depth = options.offset + options.k
        if dated or options.where:
            depth = options.candidates or DATE_CANDIDATES
        elif matched:
            depth = max(depth, self.rerank_top(options))
        with self.timer("vector_search"):
            ranked = self._ranked(query, encoded, depth, allowed)
            if options.hybrid and query.texts(1):
                ranked = self._fuse(ranked, " ".join(query.texts(1)), depth, allowed)
            hits = self._hits(ranked)
        if matched:
            with self.timer("rerank"):
                hits = self._rerank(hits, query)
            floor = options.min_match if options.min_match is not None else DATE_MIN_MATCH if dated else None
            if floor is not None:
                hits = [hit for hit in hits if hit.match >= floor]
        report = None
        if conditions:
            wanted = len(hits) if dated else options.offset + options.k
            with self.timer("generation"):
                hits, report = where.keep_answering(hits, conditions, wanted, self.answers)
        if dated:
            hits.sort(key=lambda hit: (hit.taken_at, hit.id), reverse=options.sort == "newest")
        page = self._marked(hits[options.offset : options.offset + options.k], query, options)
        return SearchResults(query=text, results=page, notes=notes, where=report)

    def _ranked(self, query: Query, encoded: dict[str, np.ndarray], depth: int,
                allowed: np.ndarray | None) -> list[tuple[int, float]]:
        """The exact top `depth` (id, score) by the query's score."""
        if query.simple is not None:  # one text: the first stage ranks it
            return self.nearest(encoded[query.simple][None], depth, allowed)[0]
        scores, proposed, own = [], [], set()
        for term in query.terms:
            if term.text is not None:
                vector = encoded[term.text]
                scores.append((term.weight, scoring.max_sim(vector)))
                if term.weight > 0:
                    proposed += [first.ids for first in self.collection.candidates(vector[None], POOL * depth,
                                                                                   allowed)]
                continue
            vectors = self.stored_vectors(term.image_id)
            scores.append((term.weight, scoring.image_similarity(vectors)))
            if term.weight > 0:
                own.add(term.image_id)
                proposed.append(self.candidates_like(vectors, POOL * depth, allowed))
        pool = np.setdiff1d(np.unique(np.concatenate(proposed)), np.array(sorted(own), dtype=np.int64))
        weights = np.array([w for w, _ in scores], dtype=np.float32)
        found, by_term = self.collection.read_vectors(pool, lambda v: np.stack([f(v) for _, f in scores], 1))
        return scoring.top(found, scoring.combine(weights, by_term), depth)

    def _selection(self, query: Query, options: SearchOptions) -> Selection:
        """The query's filters and the options' together (both hold)."""
        given = query.filters
        return Selection(path_prefix=options.path_prefix, path_part=given.path,
                         after=max(filter(None, (options.after, given.after)), default=None),
                         before=min(filter(None, (options.before, given.before)), default=None),
                         caption=given.caption, text=given.text)

    def _listing(self, selection: Selection, options: SearchOptions) -> list[Hit]:
        """Newest (or oldest) first; by relevance, a `text:` listing puts the closest reading
        of its phrases first, then the newest."""
        ids, dates = self.collection.dated_ids(selection)
        keys = [ids, dates if options.sort == "oldest" else -dates]
        if selection.text and options.sort == "relevance":
            read = [self.collection.text_scores(phrase) for phrase in selection.text]
            keys.append(-np.array([sum(scores.get(int(i), 0.0) for scores in read) for i in ids]))
        order = np.lexsort(tuple(keys))  # the last key sorts first
        page = order[options.offset : options.offset + options.k]
        return self._hits((int(ids[i]), None) for i in page)

    def _notes(self, selection: Selection) -> list[str]:
        if not selection.text:
            return []
        unread = len(self.collection.unread(text=True))
        return [NO_TEXT.format(unread)] if unread else []

    @staticmethod
    def _marked(hits: list[Hit], query: Query, options: SearchOptions) -> list[Hit]:
        """The hits with the words of their text that the query's `text:` phrases (and, with
        hybrid, its words) matched."""
        phrases = list(query.filters.text) + (query.texts(1) if options.hybrid else [])
        if not phrases:
            return hits
        return [hit.model_copy(update={"text_marks": textmatch.marks(hit.text, phrases)}) if hit.text else hit
                for hit in hits]

    def _fuse(self, ranked, query: str, depth: int, allowed) -> list[tuple[int, float]]:
        """Reciprocal rank fusion of the vector ranking and the full-text rankings of the
        captions and of the text read in the images."""
        rankings = [self.collection.caption_search(query, limit=depth),
                    self.collection.text_search(query, limit=depth)]
        if allowed is not None:
            permitted = set(allowed.tolist())
            rankings = [[i for i in ids if i in permitted] for ids in rankings]
        fused: dict[int, float] = {}
        weighted = zip(([image for image, _ in ranked], *rankings), (1.0, 1.0, TEXT_WEIGHT), strict=True)
        for ranking, weight in weighted:
            for rank, image in enumerate(ranking, start=1):
                fused[image] = fused.get(image, 0.0) + weight / (RRF_K + rank)
        return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:depth]

    def _rerank(self, hits: list[Hit], query: Query) -> list[Hit]:
        """Each hit's match probability, best first; hits whose file is gone are dropped. With
        several terms it is the smallest of the + text terms' probabilities, times one minus
        the largest of the - text terms'."""
        ids = [hit.id for hit in hits]
        wanted, unwanted = query.texts(1), query.texts(-1)
        if not wanted:
            raise InputError("a match probability (rerank, min_match or a date order) needs a + text term")
        wanted = [self.match(text, ids) for text in wanted]
        unwanted = [self.match(text, ids) for text in unwanted]
        matches = {i: min(m[i] for m in wanted) * (1 - max((m[i] for m in unwanted), default=0.0))
                   for i in ids if all(i in m for m in wanted + unwanted)}
        reranked = [hit.model_copy(update={"match": matches[hit.id]}) for hit in hits if hit.id in matches]
        return sorted(reranked, key=lambda hit: (-hit.match, -hit.score, hit.id))


def check(query: str, options: SearchOptions) -> tuple[Query, list[where.Where]]:
    """The query and the where conditions, parsed; InputError (a QueryError for the query)
    when they or the options cannot be searched. A front end may call it before loading a
    model."""
    if options.k < 1 or options.offset < 0 or (options.rerank_top or 1) < 1 or (options.candidates or 1) < 1:
        raise InputError("k, rerank_top and candidates must be at least 1, and offset at least 0")
    if options.sort not in ("relevance", "newest", "oldest"):
        raise InputError(f"sort is relevance, newest or oldest, not {options.sort!r}")
    conditions = [where.Where.parse(condition) for condition in options.where]
    return querylang.parse(query), conditions
