"""What a search may ask for (`SearchOptions`), its defaults, and the check a front end runs
before it loads a model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..config import Sort, choices
from ..errors import InputError
from ..records import Selection
from ..store.catalog.dates import local
from . import language, where

ACCELERATOR_RERANK_TOP = 128  # hits the match head reranks on a GPU by default, as the BLIP-2 paper
DATE_CANDIDATES = 200  # first-stage hits a date order or a where condition considers by default
DATE_MIN_MATCH = 0.5  # the match probability a hit needs to be listed in a date order, by default
MODEL_ASKS = 1600  # candidates x where conditions a search may ask the decoder at most (8 x 200)


@dataclass(frozen=True)
class SearchOptions:
    k: int = 10
    offset: int = 0
    rerank: bool = False
    rerank_top: int | None = None  # None: the page shown on a CPU, ACCELERATOR_RERANK_TOP on a GPU
    min_match: float | None = None  # drop hits below this match probability; implies rerank
    hybrid: bool = False
    path_prefix: str | None = None
    after: datetime | None = None
    before: datetime | None = None
    sort: Sort = "relevance"  # newest/oldest: the candidates that match, by date
    candidates: int | None = None  # first-stage hits a date order or where considers (DATE_CANDIDATES)
    where: tuple[str, ...] = ()  # QUESTION=ANSWER: hits whose answer to QUESTION is ANSWER

    @property
    def dated(self) -> bool:
        return self.sort != "relevance"

    @property
    def matched(self) -> bool:
        """The hits need the match head's probability: a rerank, a cutoff or a date order."""
        return self.rerank or self.min_match is not None or self.dated

    @property
    def floor(self) -> float | None:
        """The match probability a hit needs to stay, if any."""
        return self.min_match if self.min_match is not None else DATE_MIN_MATCH if self.dated else None


DEFAULTS = SearchOptions()


def check(query: str, options: SearchOptions) -> tuple[language.Query, list[where.Where]]:
    """The query and the where conditions, parsed; InputError (a QueryError for the query)
    when they or the options cannot be searched. A front end may call it before loading a
    model."""
    if options.k < 1 or options.offset < 0 or (options.rerank_top or 1) < 1 or (options.candidates or 1) < 1:
        raise InputError("k, rerank_top and candidates must be at least 1, and offset at least 0")
    if options.min_match is not None and not 0.0 <= options.min_match <= 1.0:  # nan is neither
        raise InputError(f"min_match is a probability from 0 to 1, not {options.min_match}")
    asks = (options.candidates or DATE_CANDIDATES) * len(options.where)
    if asks > MODEL_ASKS:
        raise InputError(f"a search asks the language model at most {MODEL_ASKS:,} times (candidates x "
                         f"where conditions): {options.candidates or DATE_CANDIDATES} x {len(options.where)} "
                         "is more; ask fewer candidates or conditions")
    if options.sort not in choices(Sort):
        raise InputError(f"sort is {', '.join(choices(Sort))}, not {options.sort!r}")
    conditions = [where.Where.parse(condition) for condition in options.where]
    return language.parse(query), conditions


def selection_of(query: language.Query, options: SearchOptions) -> Selection:
    """The query's filters and the options' together (both hold); `album:` is the albums' to
    narrow (`Albums.narrowed`)."""
    given = query.filters
    afters = [local(bound) for bound in (options.after, given.after) if bound]  # aware or naive: naive local
    befores = [local(bound) for bound in (options.before, given.before) if bound]
    return Selection(path_prefix=options.path_prefix, path_part=given.path,
                     after=max(afters, default=None), before=min(befores, default=None),
                     caption=given.caption, text=given.text, media=given.media)
