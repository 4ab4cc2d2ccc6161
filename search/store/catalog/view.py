"""Which rows a catalog's reads see: its *view* (migration 0006).

Every image row carries the generation whose transaction wrote it, and the meta key
`published` is the newest generation readers may see. A writer at work (an index run,
`Collection.writing`) commits its batches above it and publishes them when it ends
(`publishing`). A reader reads at one generation: that of its collection's vector index
(`follow`), so that its counts, listings, full text and stored vectors hold the very images
its vector index holds; with no vector index, at the published generation.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Integer, bindparam, cast, func, select

from .schema import ImageRow, MetaRow

PUBLISHED = "published"  # the meta key
# the same condition for statements written in SQL (full text): bind `view` (None: published)
VISIBLE_SQL = ("images.generation <= COALESCE(:view, (SELECT CAST(value AS INTEGER) FROM meta "
               f"WHERE key = '{PUBLISHED}'), 0)")


def published():
    """SQL: the published generation (0 before anything was)."""
    stored = select(cast(MetaRow.value, Integer)).where(MetaRow.key == PUBLISHED).scalar_subquery()
    return func.coalesce(stored, 0)


class View:
    def __init__(self) -> None:
        self._at: Callable[[], int | None] = lambda: None

    def follow(self, at: Callable[[], int | None]) -> None:
        """Read at the generation `at()` says when it says one (a collection's vector index),
        else at the published one."""
        self._at = at

    @property
    def generation(self) -> int | None:
        return self._at()

    def visible(self, at: int | None = None):
        """SQL: the image rows seen at generation `at` (None: the view's)."""
        at = self._at() if at is None else at
        return ImageRow.generation <= (published() if at is None else bindparam(None, at, type_=Integer))

    def params(self) -> dict[str, int | None]:
        """The parameters of `VISIBLE_SQL`."""
        return {"view": self._at()}
