"""Smart albums as the catalog holds them (migration 0010): each album's saved query, and each
image's place in it: `in` (it passed the album's cutoff when its content was indexed),
`pinned` or `excluded` by hand. `search.query.albums` decides; this stores and reads.

An image's place is read only while the image is: a deleted image leaves its albums at once
(readers join the rows they see), and `prune` drops the places left behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ...errors import InputError
from ...records import AlbumRecord
from .blobs import chunks
from .rows import searched
from .schema import AlbumImageRow, AlbumRow, ImageRow
from .view import View

IN, PINNED, EXCLUDED = "in", "pinned", "excluded"


@dataclass(frozen=True)
class Place:
    state: str  # IN, PINNED or EXCLUDED
    match: float | None


class AlbumStore:
    def __init__(self, engine: Engine, view: View) -> None:
        self._engine = engine
        self._view = view

    def create(self, name: str, query: str, *, min_match: float | None, sort: str, where: Iterable[str],
               generation: int) -> AlbumRecord:
        """A new album, judged up to `generation`; an InputError when the name is taken."""
        row = AlbumRow(name=name, query=query, min_match=min_match, sort=sort,
                       conditions=json.dumps(list(where)), created_at=_now(), seen=generation,
                       checked=generation)
        try:
            with Session(self._engine) as session, session.begin():
                session.add(row)
        except IntegrityError:
            raise InputError(f"an album named {name!r} exists: delete it first, or choose another "
                             "name") from None
        return self.get(name)

    def get(self, name: str) -> AlbumRecord | None:
        with Session(self._engine) as session:
            row = session.scalar(select(AlbumRow).where(AlbumRow.name == name))
            return None if row is None else _record(row)

    def all(self) -> list[AlbumRecord]:
        with Session(self._engine) as session:
            return [_record(row) for row in session.scalars(select(AlbumRow).order_by(AlbumRow.name))]

    def delete(self, album: AlbumRecord) -> None:
        with Session(self._engine) as session, session.begin():
            session.execute(delete(AlbumImageRow).where(AlbumImageRow.album_id == album.id))
            session.execute(delete(AlbumRow).where(AlbumRow.id == album.id))

    def places(self, album: AlbumRecord) -> dict[int, Place]:
        """Each visible image's place in `album`, by row id."""
        with Session(self._engine) as session:
            rows = session.execute(
                select(AlbumImageRow.image_id, AlbumImageRow.state, AlbumImageRow.match)
                .join(ImageRow, ImageRow.id == AlbumImageRow.image_id)
                .where(AlbumImageRow.album_id == album.id, ImageRow.status == "ok", self._view.visible()))
            return {image_id: Place(state, match) for image_id, state, match in rows}

    def written_after(self, generation: int) -> set[int]:
        """Rows readers see (images and moments) whose content was written after `generation`."""
        with Session(self._engine) as session:
            found = session.scalars(select(ImageRow.id).where(
                ImageRow.generation > generation, ImageRow.status == "ok", searched(), self._view.visible()))
            return set(found)

    def judge(self, album: AlbumRecord, judged: Iterable[int], passed: dict[int, float],
              generation: int) -> None:
        """The verdicts on the rows `judged`: those in `passed` are in (with their match
        probability), the rest are not; a pinned or excluded row keeps its place. The album
        then covers the catalog up to `generation`."""
        judged = sorted(set(judged))
        with Session(self._engine) as session, session.begin():
            held = set()
            for part in chunks(judged):
                held |= set(session.scalars(select(AlbumImageRow.image_id).where(
                    AlbumImageRow.album_id == album.id, AlbumImageRow.image_id.in_(part),
                    AlbumImageRow.state != IN)))
                session.execute(delete(AlbumImageRow).where(AlbumImageRow.album_id == album.id,
                                                            AlbumImageRow.image_id.in_(part),
                                                            AlbumImageRow.state == IN))
            now = _now()
            session.add_all(AlbumImageRow(album_id=album.id, image_id=image_id, state=IN, match=match,
                                          added_at=now)
                            for image_id, match in passed.items() if image_id not in held)
            session.execute(update(AlbumRow).where(AlbumRow.id == album.id)
                            .values(checked=func.max(AlbumRow.checked, generation)
                                    if self._engine.dialect.name == "sqlite"
                                    else func.greatest(AlbumRow.checked, generation)))

    def place(self, album: AlbumRecord, ids: Iterable[int], state: str | None,
              matches: dict[int, float] | None = None) -> None:
        """Pin or exclude `ids` by hand (`state`), or take back what was done by hand (None):
        they are then in only where they had passed (`matches`)."""
        ids = sorted(set(ids))
        with Session(self._engine) as session, session.begin():
            for part in chunks(ids):
                session.execute(delete(AlbumImageRow).where(AlbumImageRow.album_id == album.id,
                                                            AlbumImageRow.image_id.in_(part)))
            now = _now()
            for image_id in ids:
                match = (matches or {}).get(image_id)
                if state is not None or match is not None:
                    session.add(AlbumImageRow(album_id=album.id, image_id=image_id, state=state or IN,
                                              match=match, added_at=now))

    def seen(self, album: AlbumRecord, generation: int) -> None:
        """The album was shown: what is written from `generation` on is new to it."""
        with Session(self._engine) as session, session.begin():
            session.execute(update(AlbumRow).where(AlbumRow.id == album.id)
                            .values(seen_at=_now(), seen=generation))

    def prune(self) -> None:
        """Drop the places of images no longer in the catalog."""
        with Session(self._engine) as session, session.begin():
            session.execute(delete(AlbumImageRow).where(AlbumImageRow.image_id.not_in(select(ImageRow.id))))


def _record(row: AlbumRow) -> AlbumRecord:
    return AlbumRecord(id=row.id, name=row.name, query=row.query, min_match=row.min_match, sort=row.sort,
                       where=tuple(json.loads(row.conditions)), created_at=row.created_at,
                       seen_at=row.seen_at, seen=row.seen, checked=row.checked)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
