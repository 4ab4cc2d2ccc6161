"""Full-text search over captions, in each backend's own syntax."""

from __future__ import annotations

import re

from sqlalchemy import Engine, text

CAPTION_SEARCH = {  # `:match` is the words joined by OR, in each backend's syntax
    "sqlite": "SELECT rowid FROM images_fts WHERE images_fts MATCH :match ORDER BY rank, rowid LIMIT :limit",
    "postgresql": "SELECT id FROM images, to_tsquery('simple', :match) AS q WHERE caption_terms @@ q "
                  "ORDER BY ts_rank(caption_terms, q) DESC, id LIMIT :limit",
}


def caption_search(engine: Engine, query: str, limit: int) -> list[int]:
    """Ids whose caption holds any word of `query`, best first: BM25 on SQLite (FTS5),
    `ts_rank` on PostgreSQL (migration 0002), ties by id. User text cannot break the
    query: only its words (`\\w+`) reach it, each quoted for FTS5, and `\\w` holds no
    tsquery operator."""
    terms = re.findall(r"\w+", query.lower())
    dialect = engine.dialect.name
    if not terms or dialect not in CAPTION_SEARCH:
        return []
    match = (" OR ".join(f'"{term}"' for term in terms) if dialect == "sqlite"
             else " | ".join(terms))
    with engine.connect() as connection:
        rows = connection.execute(text(CAPTION_SEARCH[dialect]), {"match": match, "limit": limit})
        return [row[0] for row in rows]


CAPTION_HOLDS = {  # `:match` is every word as a prefix, in each backend's syntax
    "sqlite": "SELECT rowid FROM images_fts WHERE images_fts MATCH :match",
    "postgresql": "SELECT id FROM images WHERE caption_terms @@ to_tsquery('simple', :match)",
}


def caption_holds(engine: Engine, phrase: str) -> list[int]:
    """Ids whose caption holds every word of `phrase`, each also as the start of a longer
    word (`car` finds `cars`), in any case."""
    terms = re.findall(r"\w+", phrase.lower())
    dialect = engine.dialect.name
    if not terms or dialect not in CAPTION_HOLDS:
        return []
    match = (" AND ".join(f'"{term}"*' for term in terms) if dialect == "sqlite"
             else " & ".join(f"{term}:*" for term in terms))
    with engine.connect() as connection:
        return [row[0] for row in connection.execute(text(CAPTION_HOLDS[dialect]), {"match": match})]
