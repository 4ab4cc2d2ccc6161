"""Smart albums: saved queries whose contents follow the index.

An album holds what its query's filters let through and, where the query has a `+` text
term, only the images whose match probability (the match head: `Searcher.matches`) reached
the album's `min_match`, and whose answers meet its `where` conditions. That verdict is
decided once per image content, when the album first sees it (`update`, which an index run
calls as it publishes), and stored (`store.catalog.albums`): the head never runs again on an
image already judged. Filters are applied as the album is read, so a moved or redated image
is placed by where it is now. Pinned images are in and excluded images are out, whatever
the query says. A deleted image leaves every album at once.

Creating an album judges the first stage's best `candidates` rows, as a date-ordered search
does (`DATE_CANDIDATES`); every image indexed afterwards is judged, whatever its rank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError, NotFound
from ..records import AlbumRecord, Selection
from ..schemas import Album, Hit
from ..store.catalog.albums import EXCLUDED, IN, PINNED, Place
from . import language, where
from .language import Query
from .options import DATE_CANDIDATES, DATE_MIN_MATCH, SearchOptions, check, selection_of

if TYPE_CHECKING:
    from .searcher import Searcher

NAME = re.compile(r"[\w][\w .'-]{0,63}")  # a name also goes in URLs and in `album:NAME`
SORTS = ("relevance", "newest", "oldest")


@dataclass(frozen=True)
class AlbumSpec:
    name: str
    query: str
    min_match: float | None = None  # None: DATE_MIN_MATCH where the query has a + text term
    sort: str = "relevance"
    where: tuple[str, ...] = ()
    candidates: int = DATE_CANDIDATES  # first-stage rows judged as it is created


class Albums:
    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        self.collection = searcher.collection
        self.store = searcher.collection.catalog.albums

    # -- the saved query ----------------------------------------------------------------------

    def create(self, spec: AlbumSpec) -> Album:
        """Save `spec` and judge the collection's images against it; InputError when it cannot
        be an album (a name taken or malformed, a query that does not parse)."""
        query, min_match = self._checked(spec)
        generation = self.collection.generation
        passed = self._first_verdicts(spec, query, min_match) if min_match is not None else {}
        album = self.store.create(spec.name, spec.query, min_match=min_match, sort=spec.sort,
                                  where=spec.where, generation=generation)
        self.store.judge(album, passed, passed, generation)
        return self.show(spec.name, limit=0, seen=False)

    def delete(self, name: str) -> None:
        self.store.delete(self._album(name))

    def all(self) -> list[Album]:
        """Every album with its count and how many items are new to it (no results)."""
        self.update()
        return [self._shaped(album, self._contents(album)) for album in self.store.all()]

    def show(self, name: str, offset: int = 0, limit: int = 50, *, seen: bool = True) -> Album:
        """The album brought up to date, a page of its contents in its order, and which are
        new since it was last shown; `seen` marks it shown now."""
        if offset < 0 or limit < 0:
            raise InputError("offset and limit must be at least 0")
        self.update()
        album = self._album(name)
        ids, places = self._contents(album)
        shown = self._shaped(album, (ids, places), self._page(album, ids, places, offset, limit))
        if seen:
            self.store.seen(album, self.collection.generation)
        return shown

    def place(self, name: str, *, pin=(), unpin=(), exclude=(), include=()) -> Album:
        """Pin or exclude images by hand, or take it back (an unpinned or included image is in
        again only where its verdict put it). A video's id places all its moments."""
        album = self._album(name)
        for ids, state in ((pin, PINNED), (exclude, EXCLUDED), (unpin, None), (include, None)):
            rows = self._rows(ids)
            if rows:
                kept = {i: p.match for i, p in self.store.places(album).items() if p.match is not None}
                self.store.place(album, rows, state, kept)
        return self.show(name, limit=0, seen=False)

    def paths(self, name: str) -> list[str]:
        """The files the album holds (a video once), in its order: what an export lists or links."""
        album = self._album(name)
        ids, places = self._contents(album)
        return [hit.path for hit in self._page(album, ids, places, 0, None)]

    # -- following the index ------------------------------------------------------------------

    def update(self) -> int:
        """Judge what was written since each album last looked: images new or changed since,
        each once. Returns how many rows were judged (the match head ran on those that pass
        the album's filters)."""
        generation = self.collection.generation
        judged = 0
        for album in self.store.all():
            if album.checked >= generation:
                continue
            fresh = self.store.written_after(album.checked)
            passed: dict[int, float] = {}
            if album.min_match is not None and fresh:
                query = language.parse(album.query)
                allowed = self.collection.catalog.listing.ids(selection_of(query, SearchOptions()))
                candidates = sorted(fresh & set(allowed.tolist()))
                passed = self._verdicts(query, album, candidates)
                judged += len(candidates)
            self.store.judge(album, fresh, passed, generation)
        self.store.prune()
        return judged

    def narrowed(self, query: Query, selection: Selection) -> Selection:
        """`selection` narrowed to the album the query names with `album:`, if any."""
        if query.filters.album is None:
            return selection
        ids, _ = self._contents(self._album(query.filters.album))
        return Selection(**{**selection.__dict__, "within": tuple(ids)})

    # -- internals ----------------------------------------------------------------------------

    def _checked(self, spec: AlbumSpec) -> tuple[Query, float | None]:
        if not NAME.fullmatch(spec.name):
            raise InputError(f"an album's name is 1 to 64 letters, digits, spaces, dots, dashes or "
                             f"apostrophes, starting with a letter or digit: not {spec.name!r}")
        if spec.sort not in SORTS:
            raise InputError(f"sort is {', '.join(SORTS)}, not {spec.sort!r}")
        query, _ = check(spec.query, SearchOptions(min_match=spec.min_match, where=spec.where,
                                                   candidates=spec.candidates))
        if query.filters.album is not None:
            raise InputError("an album's query cannot name an album (album:)")
        if not query.texts(1):
            if query.terms or spec.min_match is not None or spec.where:
                raise InputError("an album needs a + text term for min_match, where or an image term; "
                                 "a query of filters alone keeps what they let through")
            return query, None
        return query, DATE_MIN_MATCH if spec.min_match is None else spec.min_match

    def _first_verdicts(self, spec: AlbumSpec, query: Query, min_match: float) -> dict[int, float]:
        """The rows of the first stage's best `candidates` that pass: a search's own verdicts."""
        options = SearchOptions(k=spec.candidates, rerank_top=spec.candidates, candidates=spec.candidates,
                                min_match=min_match, where=spec.where)
        hits = self.searcher.find(spec.query, options).results
        return {hit.row: hit.match for hit in hits}

    def _verdicts(self, query: Query, album: AlbumRecord, ids: list[int]) -> dict[int, float]:
        """The rows of `ids` whose match probability reaches the album's cutoff and whose
        answers meet its conditions, with their probability."""
        if not ids:
            return {}
        matches = self.searcher.matches(query, ids)
        passing = [i for i in ids if i in matches and matches[i] >= album.min_match]
        conditions = [where.Where.parse(condition) for condition in album.where]
        if conditions and passing:
            hits = [Hit(id=i, path="", score=None, caption=None) for i in passing]
            kept, _ = where.keep_answering(hits, conditions, len(hits), self.searcher.questions.answers)
            passing = [hit.id for hit in kept]
        return {i: matches[i] for i in passing}

    def _album(self, name: str) -> AlbumRecord:
        album = self.store.get(name)
        if album is None:
            raise NotFound(f"no album named {name!r}")
        return album

    def _rows(self, ids) -> list[int]:
        """The catalog rows behind image ids: a video's are its moments. NotFound for an id
        that is not an indexed image."""
        rows = []
        for image_id in ids:
            record = self.searcher.lookup.record(image_id)
            moments = self.collection.catalog.moments.of(image_id) if record.media == "video" and \
                record.parent is None else []
            rows += [m.id for m in moments] or [image_id]
        return rows

    def _contents(self, album: AlbumRecord) -> tuple[list[int], dict[int, Place]]:
        """(the rows the album holds, ascending; every visible place of it)."""
        query = language.parse(album.query)
        places = self.store.places(album)
        allowed = self.collection.catalog.listing.ids(selection_of(query, SearchOptions())).tolist()
        if album.min_match is not None:
            allowed = [i for i in allowed if i in places and places[i].state == IN]
        pinned = [i for i, place in places.items() if place.state == PINNED]
        excluded = {i for i, place in places.items() if place.state == EXCLUDED}
        return sorted(set(allowed + pinned) - excluded), places

    def _page(self, album: AlbumRecord, ids: list[int], places: dict[int, Place], offset: int,
              limit: int | None) -> list[Hit]:
        """Hits of the album's items in its order: by match probability (pinned first), or by date."""
        lookup, end = self.searcher.lookup, None if limit is None else offset + limit
        if album.sort == "relevance" and album.min_match is not None:
            def rank(i: int) -> tuple:
                return (places[i].state != PINNED, -(places[i].match or 0.0), i)

            ranked = sorted(ids, key=rank)
            hits = lookup.hits((i, places[i].match) for i in ranked)[offset:end]
        else:
            order = "oldest" if album.sort == "oldest" else "newest"
            _, page = self.collection.catalog.listing.page(Selection(within=tuple(ids)), offset, limit, order)
            hits = lookup.hits((i, None) for i in page)
        return [hit.model_copy(update={"match": places[hit.row].match}) if hit.row in places else hit
                for hit in hits]

    def _shaped(self, album: AlbumRecord, contents: tuple[list[int], dict[int, Place]],
                results: list[Hit] = ()) -> Album:
        ids, places = contents
        new_rows = self.store.written_after(album.seen) & set(ids)
        count, _ = self.collection.catalog.listing.page(Selection(within=tuple(ids)), 0, 0)
        new, _ = self.collection.catalog.listing.page(Selection(within=tuple(sorted(new_rows))), 0, 0)
        new_ids = [hit.id for hit in results
                   if hit.row in new_rows or any(m.id in new_rows for m in hit.moments)]
        return Album(name=album.name, query=album.query, min_match=album.min_match, sort=album.sort,
                     where=list(album.where), count=count, new=new, created_at=_iso(album.created_at),
                     seen_at=_iso(album.seen_at), results=list(results), new_ids=new_ids,
                     pinned=sorted(i for i, p in places.items() if p.state == PINNED),
                     excluded=sorted(i for i, p in places.items() if p.state == EXCLUDED))


def _iso(when) -> str | None:
    return None if when is None else when.isoformat(timespec="seconds")
