"""`Searcher`: the queries over a collection with an engine. A text search in the query
language (`language`) takes the vector index's first stage for each `+` term and ranks the
union exactly (`scoring`: a text term's score is BLIP-2's ITC, the max over the image's
query vectors; an image term's is `similar`'s; the query's is the weighted sum, `-` terms
subtracted). It can fuse the full-text ranks of captions and of the text read in images by
reciprocal rank fusion, rerank with the match head (ITM) as the BLIP-2 paper does, keep the
hits the head calls a match and order them by date, or keep those whose answer to a
question is the one given (`where`). Similar images and questions about hits are parts of
it: `searcher.similar`, `searcher.questions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..collection import Collection
from ..errors import InputError, SearchError
from ..media import textmatch
from ..records import Selection
from ..schemas import Hit, SearchResults
from ..store.shards import gaps
from . import language, scoring, where
from .albums import Albums
from .language import Query
from .lookup import Lookup, Timer, untimed
from .options import ACCELERATOR_RERANK_TOP, DATE_CANDIDATES, DEFAULTS, SearchOptions, check, selection_of
from .questions import Questions
from .similar import Similar, partial

RRF_K = 60  # the usual reciprocal-rank-fusion constant
TEXT_WEIGHT = 2.0  # hybrid: the text read in an image ranks only images holding the words, a surer sign
# than a rank among captions or vectors (every image has one): its ranks count twice
POOL = 4  # a query of several terms: first-stage images asked for a term, per hit wanted
NO_TEXT = "text: matches only images whose text was read: this index has {} not read yet (run index again)"


class Searcher:
    def __init__(self, collection: Collection, engine, timer: Timer = untimed) -> None:
        """`timer(stage)` wraps each stage so a server can record where time goes."""
        self.collection, self.engine, self.timer = collection, engine, timer
        self.lookup = Lookup(collection)
        self.similar = Similar(collection, engine, self.lookup, timer)
        self.questions = Questions(collection, engine, self.lookup, timer)
        self.albums = Albums(self)

    def with_engine(self, engine) -> Searcher:
        """This searcher over another engine (a server's, taking turns with other requests)."""
        return Searcher(self.collection, engine, self.timer)

    def search(self, query: str, options: SearchOptions = DEFAULTS) -> list[Hit]:
        return self.find(query, options).results

    def find(self, query: str, options: SearchOptions = DEFAULTS) -> SearchResults:
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
        encoded: dict[str, np.ndarray] = {}
        if texts:
            with self.timer("text_encode"):
                encoded = dict(zip(texts, self.engine.embed_texts(texts), strict=True))
        for i, query, conditions in valid:
            try:
                with gaps() as missing:
                    found = self._search(query, conditions, encoded, *requests[i])
                outcomes[i] = partial(found, missing)
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
        selection = self.albums.narrowed(query, selection_of(query, options))
        allowed = self.collection.catalog.listing.ids(selection) if selection else None
        notes = self._notes(selection)
        if not query.terms:  # filters alone: a listing, newest first (text: best read first)
            page = _marked(self._listing(selection, options), query, options)
            return SearchResults(query=text, results=page, notes=notes)
        depth = options.offset + options.k
        if options.dated or options.where:
            depth = options.candidates or DATE_CANDIDATES
        elif options.matched:
            depth = max(depth, self.rerank_top(options))
        with self.timer("vector_search"):
            wide = depth * self.lookup.spread()  # a video's moments are one hit
            ranked = self._ranked(query, encoded, wide, allowed)
            if options.hybrid and query.texts(1):
                ranked = self._fuse(ranked, " ".join(query.texts(1)), wide, allowed)
            hits = self.lookup.hits(ranked)[:depth]
        if options.matched:
            with self.timer("rerank"):
                hits = self._rerank(hits, query)
            if options.floor is not None:
                hits = [hit for hit in hits if hit.match >= options.floor]
        report = None
        if conditions:
            wanted = len(hits) if options.dated else options.offset + options.k
            with self.timer("generation"):
                hits, report = where.keep_answering(hits, conditions, wanted, self.questions.answers)
        if options.dated:
            hits.sort(key=lambda hit: (hit.taken_at, hit.id), reverse=options.sort == "newest")
        page = _marked(hits[options.offset : options.offset + options.k], query, options)
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
            vectors = self.lookup.vectors(term.image_id)
            scores.append((term.weight, scoring.image_similarity(vectors)))
            if term.weight > 0:
                own.add(term.image_id)
                proposed.append(self.similar.candidates(vectors, POOL * depth, allowed))
        pool = np.setdiff1d(np.unique(np.concatenate(proposed)), np.array(sorted(own), dtype=np.int64))
        weights = np.array([w for w, _ in scores], dtype=np.float32)
        found, by_term = self.collection.read_vectors(pool, lambda v: np.stack([f(v) for _, f in scores], 1))
        return scoring.top(found, scoring.combine(weights, by_term), depth)

    def _listing(self, selection: Selection, options: SearchOptions) -> list[Hit]:
        """Newest (or oldest) first, paged by the catalog; by relevance, a `text:` listing puts
        the closest reading of its phrases first, then the newest."""
        listing = self.collection.catalog.listing
        order = "oldest" if options.sort == "oldest" else "newest"
        if not (selection.text and options.sort == "relevance"):
            _, ids = listing.page(selection, options.offset, options.k, order)
            return self.lookup.hits((i, None) for i in ids)
        _, ids = listing.page(selection, 0, None, order)  # every match is scored to rank them
        read = [self.collection.catalog.fulltext.text_scores(phrase) for phrase in selection.text]
        ids.sort(key=lambda i: -sum(scores.get(i, 0.0) for scores in read))  # stable: by date within
        return self.lookup.hits((i, None) for i in ids[options.offset : options.offset + options.k])

    def _notes(self, selection: Selection) -> list[str]:
        if not selection.text:
            return []
        unread = len(self.collection.catalog.listing.unread(text=True))
        return [NO_TEXT.format(unread)] if unread else []

    def _fuse(self, ranked, query: str, depth: int, allowed) -> list[tuple[int, float]]:
        """Reciprocal rank fusion of the vector ranking and the full-text rankings of the
        captions and of the text read in the images."""
        fulltext = self.collection.catalog.fulltext
        rankings = [fulltext.caption_search(query, limit=depth), fulltext.text_search(query, limit=depth)]
        if allowed is not None:
            permitted = set(allowed.tolist())
            rankings = [[i for i in ids if i in permitted] for ids in rankings]
        fused: dict[int, float] = {}
        weighted = zip(([image for image, _ in ranked], *rankings), (1.0, 1.0, TEXT_WEIGHT), strict=True)
        for ranking, weight in weighted:
            for rank, image in enumerate(ranking, start=1):
                fused[image] = fused.get(image, 0.0) + weight / (RRF_K + rank)
        return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:depth]

    def matches(self, query: str | Query, ids: list[int]) -> dict[int, float]:
        """The match probability of each of `ids` for `query` (in the query language): with
        several terms the smallest of the + text terms' probabilities, times one minus the
        largest of the - text terms'. Images whose file is gone are left out. What a rerank
        ranks by, and what the web page fills its cards in with."""
        query = language.parse(query) if isinstance(query, str) else query
        wanted, unwanted = query.texts(1), query.texts(-1)
        if not wanted:
            raise InputError("a match probability (rerank, min_match or a date order) needs a + text term")
        wanted = [self.questions.match(text, ids) for text in wanted]
        unwanted = [self.questions.match(text, ids) for text in unwanted]
        return {i: min(m[i] for m in wanted) * (1 - max((m[i] for m in unwanted), default=0.0))
                for i in ids if all(i in m for m in wanted + unwanted)}

    def _rerank(self, hits: list[Hit], query: Query) -> list[Hit]:
        """Each hit's match probability (`matches`), best first."""
        matches = self.matches(query, [hit.row for hit in hits])  # a video hit's: its moment's
        reranked = [hit.model_copy(update={"match": matches[hit.row]}) for hit in hits if hit.row in matches]
        return sorted(reranked, key=lambda hit: (-hit.match, -hit.score, hit.id))


def _marked(hits: list[Hit], query: Query, options: SearchOptions) -> list[Hit]:
    """The hits with the words of their text that the query's `text:` phrases (and, with
    hybrid, its words) matched."""
    phrases = list(query.filters.text) + (query.texts(1) if options.hybrid else [])
    if not phrases:
        return hits
    return [hit.model_copy(update={"text_marks": textmatch.marks(hit.text, phrases)}) if hit.text else hit
            for hit in hits]
