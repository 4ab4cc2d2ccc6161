"""Which images a search or a listing may return, a page of them in date or path order, and
what the duplicate finder and the indexer ask of every row."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Engine, bindparam, func, or_, select
from sqlalchemy.orm import Session

from ...config import Order
from ...records import Fingerprints, Selection
from .fulltext import FullText
from .rows import conditions, searched
from .schema import ImageRow
from .view import View


class Listing:
    def __init__(self, engine: Engine, fulltext: FullText, view: View) -> None:
        self._engine = engine
        self._fulltext = fulltext
        self._view = view

    def ids(self, selection: Selection) -> np.ndarray:
        """(n,) int64: the readable images `selection` lets through, ascending."""
        with Session(self._engine) as session:
            found = session.scalars(self._chosen(selection).order_by(ImageRow.id)).all()
        return np.array(found, dtype=np.int64)

    def page(self, selection: Selection, offset: int, limit: int | None,
             order: Order = "newest") -> tuple[int, list[int]]:
        """(how many images and videos `selection` lets through, the ids of `limit` of them
        from `offset`, all when None): newest or oldest first by date (EXIF, else modified),
        or by path. A video is one entry, given by the id of its first moment that passes.
        Counted, ordered and cut by the database: a page reads its own rows only."""
        chosen = self._chosen(selection).add_columns(ImageRow.parent, ImageRow.dated, ImageRow.path)
        chosen = chosen.subquery()
        first = func.min(chosen.c.id)
        dated = func.max(chosen.c.dated)
        orders = {"newest": (dated.desc(), first), "oldest": (dated, first),
                  "path": (func.min(chosen.c.path),)}
        items = select(first).group_by(func.coalesce(chosen.c.parent, chosen.c.id))
        with Session(self._engine) as session:
            total = session.scalar(select(func.count()).select_from(items.subquery())) or 0
            ids = session.scalars(items.order_by(*orders[order]).offset(offset).limit(limit)).all()
        return total, list(ids)

    def unread(self, *, text: bool = False, picture: bool = False) -> list[int]:
        """Readable images with no text read yet (`text`) or no picture hash (`picture`):
        indexed before either existed, or with OCR off; ascending."""
        wanted = [ImageRow.text.is_(None)] * text + [ImageRow.picture_hash.is_(None)] * picture
        if not wanted:
            return []
        with Session(self._engine) as session:
            unread = select(ImageRow.id).where(ImageRow.status == "ok", ImageRow.media == "image",
                                               self._view.visible(), or_(*wanted))
            return list(session.scalars(unread.order_by(ImageRow.id)))

    def fingerprints(self) -> Fingerprints:
        """Readable images' ids, paths, content and picture hashes, pixels, dates and OCR text,
        by id (videos: `moments`)."""
        columns = (ImageRow.id, ImageRow.path, ImageRow.content_hash, ImageRow.picture_hash, ImageRow.width,
                   ImageRow.height, ImageRow.dated, ImageRow.text)
        with Session(self._engine) as session:
            readable = select(*columns).where(ImageRow.status == "ok", ImageRow.media == "image",
                                              self._view.visible())
            rows = session.execute(readable.order_by(ImageRow.id)).all()
        return Fingerprints(
            ids=np.array([row.id for row in rows], dtype=np.int64), paths=[row.path for row in rows],
            content_hashes=[row.content_hash for row in rows],
            picture_hashes=np.array([row.picture_hash or 0 for row in rows], dtype=np.int64),
            hashed=np.array([row.picture_hash is not None for row in rows], dtype=bool),
            pixels=np.array([(row.width or 0) * (row.height or 0) for row in rows], dtype=np.int64),
            dates=np.array([row.dated for row in rows], dtype=np.float64), texts=[row.text for row in rows])

    def _chosen(self, selection: Selection):
        """SELECT the ids of what `selection` lets through: its conditions, and its caption
        and text phrases (each a full-text search, `fulltext`)."""
        chosen = select(ImageRow.id).where(*conditions(selection), searched(), self._view.visible())
        for number, phrase in enumerate(selection.caption):
            chosen = chosen.where(self._fulltext.caption_holds(phrase, f"caption{number}"))
        if selection.within is not None:  # literals too: an album may hold more rows than that limit
            within = bindparam("within", sorted(selection.within), expanding=True, literal_execute=True)
            chosen = chosen.where(ImageRow.id.in_(within))
        for number, phrase in enumerate(selection.text):
            # decided in Python (`textmatch`): its ids go in as literals, which no limit on a
            # statement's parameters (32,766 on SQLite, 65,535 on PostgreSQL) cuts short
            ids = sorted(self._fulltext.text_scores(phrase))
            chosen = chosen.where(ImageRow.id.in_(bindparam(f"text{number}", ids, expanding=True,
                                                            literal_execute=True)))
        return chosen
