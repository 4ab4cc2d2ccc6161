"""Full-text search over captions and over the text read from images, in each backend's
own syntax: `FullText`, which the catalog holds as `catalog.fulltext`."""

from __future__ import annotations

import re

from sqlalchemy import Engine, Integer, bindparam, column, false, select, text

from ...media import textmatch
from ...media.needles import ANY, needles
from .schema import ImageRow
from .view import VISIBLE_SQL, View

CAPTION_SEARCH = {  # `:match` is the words joined by OR, in each backend's syntax; rows the view sees
    "sqlite": "SELECT images_fts.rowid FROM images_fts JOIN images ON images.id = images_fts.rowid "
              f"WHERE images_fts MATCH :match AND {VISIBLE_SQL} "
              "ORDER BY images_fts.rank, images_fts.rowid LIMIT :limit",
    "postgresql": "SELECT id FROM images, to_tsquery('simple', :match) AS q WHERE caption_terms @@ q "
                  f"AND {VISIBLE_SQL} ORDER BY ts_rank(caption_terms, q) DESC, id LIMIT :limit",
}
CAPTION_HOLDS = {  # `:match` is every word as a prefix, in each backend's syntax
    "sqlite": "SELECT rowid AS id FROM images_fts WHERE images_fts MATCH :match",
    "postgresql": "SELECT id FROM images WHERE caption_terms @@ to_tsquery('simple', :match)",
}

# -- the text read from images (OCR): its key (migration 0007) under a trigram index ----------

QUIET = frozenset("the and for with are was were has have this that from into its his her their our you "
                  "not but all any can one two".split())  # words a description holds, not a search for text
HOLDS = {  # the ids whose key holds the LIKE pattern `:{name}`, through the trigram index
    "sqlite": "SELECT rowid FROM images_text WHERE text_key LIKE :{name}",
    "postgresql": "SELECT id FROM images WHERE text_key LIKE :{name}",
}
SCANNED = "SELECT id FROM images WHERE {holds}"  # patterns without three characters in a row, which
# no trigram index serves: one pass over the keys for all of them
READ = f"SELECT id, text FROM images WHERE status = 'ok' AND text IS NOT NULL AND {VISIBLE_SQL}"
ARMS = 100  # SELECTs per compound (SQLite allows 500)


class FullText:
    """Searches over the rows the catalog's view sees (`view`); `caption_holds` is a condition
    that the listing, which applies the view, adds."""

    def __init__(self, engine: Engine, view: View) -> None:
        self._engine = engine
        self._view = view

    def caption_search(self, query: str, limit: int) -> list[int]:
        """Ids whose caption holds any word of `query`, best first: BM25 on SQLite (FTS5),
        `ts_rank` on PostgreSQL (migration 0002), ties by id. User text cannot break the
        query: only its words (`\\w+`) reach it, each quoted for FTS5, and `\\w` holds no
        tsquery operator."""
        terms = re.findall(r"\w+", query.lower())
        dialect = self._engine.dialect.name
        if not terms or dialect not in CAPTION_SEARCH:
            return []
        match = (" OR ".join(f'"{term}"' for term in terms) if dialect == "sqlite"
                 else " | ".join(terms))
        with self._engine.connect() as connection:
            rows = connection.execute(_viewed(CAPTION_SEARCH[dialect]),
                                      {"match": match, "limit": limit} | self._view.params())
            return [row[0] for row in rows]

    def caption_holds(self, phrase: str, name: str = "match"):
        """A condition on an image row: its caption holds every word of `phrase`, each also
        as the start of a longer word (`car` finds `cars`), in any case; in the database
        however many rows it keeps (the row's own `tsvector` on PostgreSQL, a subquery of the
        FTS5 table on SQLite). `name`: its parameter's, one a phrase."""
        terms = re.findall(r"\w+", phrase.lower())
        dialect = self._engine.dialect.name
        if not terms or dialect not in CAPTION_HOLDS:
            return false()
        match = (" AND ".join(f'"{term}"*' for term in terms) if dialect == "sqlite"
                 else " & ".join(f"{term}:*" for term in terms))
        if dialect == "postgresql":  # a condition on the row itself: no semi-join for the planner to misjudge
            return text(f"images.caption_terms @@ to_tsquery('simple', :{name})").bindparams(**{name: match})
        holding = text(CAPTION_HOLDS[dialect].replace(":match", f":{name}")).bindparams(**{name: match})
        return ImageRow.id.in_(select(holding.columns(column("id", Integer)).subquery().c.id))

    def text_scores(self, phrase: str) -> dict[int, float]:
        """Images whose text holds every word of `phrase` (`textmatch`: any case and accent,
        part of a word, small misreadings), with how well (0..1). The database reads the texts
        whose key holds, for each word, one pattern of each list of its `needles`, as every
        text the word matches does; `textmatch` decides."""
        typed = textmatch.words(phrase)
        dialect = self._engine.dialect.name
        if not typed or dialect not in HOLDS:
            return {}
        statement, values = READ, {}
        for number, patterns in enumerate(patterns for word in typed for patterns in needles(word)):
            holding, named = _holding(dialect, patterns, f"w{number}_")
            statement += f" AND ({holding})"
            values |= named
        with self._engine.connect() as connection:
            texts = connection.execute(_viewed(statement), values | self._view.params()).all()
        scores = {image_id: textmatch.phrase_score(written, phrase) for image_id, written in texts}
        return {image_id: score for image_id, score in scores.items() if score > 0}

    def text_search(self, query: str, limit: int) -> list[int]:
        """Ids whose text holds words of `query` (each as `text_scores` matches one), the most
        words first, then the closest, ties by id: the text ranking `--hybrid` fuses. Words of
        one or two letters, and the commonest (`QUIET`), are left out: `a` is in most texts."""
        totals: dict[int, float] = {}
        for word in {word for word in textmatch.words(query) if len(word) > 2 and word not in QUIET}:
            for image_id, score in self.text_scores(word).items():
                totals[image_id] = totals.get(image_id, 0.0) + score
        return sorted(totals, key=lambda image_id: (-totals[image_id], image_id))[:limit]


def _viewed(statement: str):
    return text(statement).bindparams(bindparam("view", type_=Integer))


def _holding(dialect: str, patterns: list[str], prefix: str) -> tuple[str, dict[str, str]]:
    """A condition on `id`: the key holds one of `patterns` (`needles`: `ANY` their only
    wildcard, as a folded word holds neither `%` nor `_`), with its parameters, named from
    `prefix`."""
    values = {f"{prefix}{i}": f"%{pattern}%" for i, pattern in enumerate(patterns)}
    indexed = [name for name, pattern in zip(values, patterns, strict=True) if _run(pattern) >= 3]
    arms = [HOLDS[dialect].format(name=name) for name in indexed]
    scanned = [name for name in values if name not in indexed]
    if scanned:
        arms.append(SCANNED.format(holds=" OR ".join(f"text_key LIKE :{name}" for name in scanned)))
    compounds = [" UNION ".join(arms[start : start + ARMS]) for start in range(0, len(arms), ARMS)]
    return " OR ".join(f"id IN ({compound})" for compound in compounds), values


def _run(pattern: str) -> int:
    """The most characters in a row that `pattern` names: a trigram index needs three."""
    return max(len(part) for part in pattern.split(ANY))
