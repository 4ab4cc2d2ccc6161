"""Stored image features (`search.store.features`) as catalog rows, one a side of an image:
`FeatureStore`, which the catalog holds as `catalog.features`, and the statements its
writes run inside a catalog transaction."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.orm import Session

from ..features import Features
from .blobs import chunks
from .schema import FeatureRow, ImageRow
from .view import View


class FeatureStore:
    def __init__(self, engine: Engine, view: View) -> None:
        self._engine = engine
        self._view = view

    def read(self, ids: Iterable[int], keys: Iterable[str]) -> dict[int, dict[str, Features]]:
        """The stored features of `ids`, by image then side, for the sides in `keys`."""
        found: dict[int, dict[str, Features]] = {}
        with Session(self._engine) as session:
            for part in chunks(sorted(set(ids))):
                rows = session.execute(select(FeatureRow).where(FeatureRow.image_id.in_(part),
                                                                FeatureRow.key.in_(list(keys))))
                for (row,) in rows:
                    stored = Features.from_bytes(row.data, (row.tokens, row.width))
                    found.setdefault(row.image_id, {})[row.key] = stored
        return found

    def lacking(self, key: str) -> list[int]:
        """Readable images with no stored features for `key` (indexed before they were kept); a
        video's moments gain theirs only as the video is decoded again."""
        held = select(FeatureRow.image_id).where(FeatureRow.key == key)
        with Session(self._engine) as session:
            wanted = select(ImageRow.id).where(ImageRow.status == "ok", ImageRow.media == "image",
                                               self._view.visible(), ImageRow.id.not_in(held))
            return list(session.scalars(wanted.order_by(ImageRow.id)))

    def totals(self) -> tuple[int, int]:
        """(images with stored features, bytes they take)."""
        with Session(self._engine) as session:
            size = func.coalesce(func.sum(func.length(FeatureRow.data)), 0)
            totals = select(func.count(func.distinct(FeatureRow.image_id)), size).join(ImageRow)
            images, size = session.execute(totals.where(self._view.visible())).one()
        return int(images), int(size)


def values(image_id: int, features: dict[str, Features]) -> list[dict]:
    return [{"image_id": image_id, "key": key, "tokens": item.shape[0], "width": item.shape[1],
             "data": item.to_bytes()} for key, item in features.items()]


def write(session: Session, rows: list[dict]) -> None:
    for part in chunks(rows, 64):  # 365 KB a row at ViT-g: a bounded statement
        session.execute(insert(FeatureRow), part)


def forget(session: Session, ids: list[int]) -> None:
    for part in chunks(ids):
        session.execute(delete(FeatureRow).where(FeatureRow.image_id.in_(part)))
