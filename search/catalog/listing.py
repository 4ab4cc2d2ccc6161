"""Which images a search or a listing may return, and their dates: the catalog's filters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.orm import Session

from ..records import Fingerprints
from . import fulltext
from .rows import filter_conditions
from .schema import ImageRow


def dated_ids(engine: Engine, *, path_prefix: str | None = None, after: datetime | None = None,
              before: datetime | None = None, path_part: str | None = None,
              caption: Iterable[str] = (), text: Iterable[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(ids, dates) of readable images under `path_prefix`, holding `path_part` (a
    folder or file name that starts with it), dated (EXIF, else mtime) in range, whose
    caption holds the words of each of `caption` and whose text each of `text`
    (`fulltext.text_scores`); ascending ids, and each one's date as seconds since the epoch
    (EXIF dates are local time)."""
    conditions = filter_conditions(path_prefix, after, before, path_part)
    chosen = select(ImageRow.id, ImageRow.taken_at, ImageRow.mtime).where(and_(*conditions))
    for phrase in caption:
        chosen = chosen.where(ImageRow.id.in_(fulltext.caption_holds(engine, phrase)))
    for phrase in text:
        chosen = chosen.where(ImageRow.id.in_(list(fulltext.text_scores(engine, phrase))))
    with Session(engine) as session:
        rows = session.execute(chosen.order_by(ImageRow.id)).all()
    ids = np.array([row[0] for row in rows], dtype=np.int64)
    return ids, np.array([_seconds(taken, mtime) for _, taken, mtime in rows], dtype=np.float64)


def ids_by_path(engine: Engine, offset: int, limit: int) -> tuple[int, list[int]]:
    """(readable images, the ids of a page of them in path order)."""
    readable = ImageRow.status == "ok"
    with Session(engine) as session:
        total = session.scalar(select(func.count()).where(readable))
        page = select(ImageRow.id).where(readable).order_by(ImageRow.path).offset(offset).limit(limit)
        return total, list(session.scalars(page))


def unread(engine: Engine, *, text: bool = False, picture: bool = False) -> list[int]:
    """Readable images with no text read yet (`text`) or no picture hash (`picture`): indexed
    before either existed, or with OCR off; ascending."""
    wanted = [ImageRow.text.is_(None)] * text + [ImageRow.picture_hash.is_(None)] * picture
    if not wanted:
        return []
    missing = or_(*wanted)
    with Session(engine) as session:
        return list(session.scalars(select(ImageRow.id).where(ImageRow.status == "ok", missing)
                                    .order_by(ImageRow.id)))


def fingerprints(engine: Engine) -> Fingerprints:
    """Readable images' ids, paths, content and picture hashes, pixels and dates, by id."""
    columns = (ImageRow.id, ImageRow.path, ImageRow.content_hash, ImageRow.picture_hash, ImageRow.width,
               ImageRow.height, ImageRow.taken_at, ImageRow.mtime)
    with Session(engine) as session:
        rows = session.execute(select(*columns).where(ImageRow.status == "ok").order_by(ImageRow.id)).all()
    return Fingerprints(
        ids=np.array([row.id for row in rows], dtype=np.int64), paths=[row.path for row in rows],
        content_hashes=[row.content_hash for row in rows],
        picture_hashes=np.array([row.picture_hash or 0 for row in rows], dtype=np.int64),
        hashed=np.array([row.picture_hash is not None for row in rows], dtype=bool),
        pixels=np.array([(row.width or 0) * (row.height or 0) for row in rows], dtype=np.int64),
        dates=np.array([_seconds(row.taken_at, row.mtime) for row in rows], dtype=np.float64))


def _seconds(taken: datetime | None, mtime: float) -> float:
    if taken is None:
        return mtime
    try:
        return taken.timestamp()  # naive: local time, as EXIF dates are
    except (ValueError, OverflowError, OSError):
        return (taken - datetime(1970, 1, 1)).total_seconds()
