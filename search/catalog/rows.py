"""Rows as the catalog writes and reads them, and the conditions it filters them by."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from sqlalchemy import and_, func, or_
from sqlalchemy.orm import Session

from ..records import ImageFile, ImageRecord
from .schema import ImageRow, MetaRow


def record(row: ImageRow) -> ImageRecord:
    return ImageRecord(**{f.name: getattr(row, f.name) for f in fields(ImageRecord)})


def date_condition(bound: datetime, op: str):
    """Taken (EXIF) on the `op` side of `bound`, else modified there. `bound` is naive local
    time, as EXIF dates are; an aware one is converted to it."""
    if bound.tzinfo is not None:
        bound = bound.astimezone().replace(tzinfo=None)
    try:
        stamp = bound.timestamp()
    except (ValueError, OverflowError, OSError):  # year 1 or 9999: out of the local clock's range
        stamp = (bound - datetime(1970, 1, 1)).total_seconds()
    taken = ImageRow.taken_at >= bound if op == ">=" else ImageRow.taken_at < bound
    modified = ImageRow.mtime >= stamp if op == ">=" else ImageRow.mtime < stamp
    return or_(and_(ImageRow.taken_at.is_not(None), taken), and_(ImageRow.taken_at.is_(None), modified))


def filter_conditions(path_prefix: str | None, after: datetime | None, before: datetime | None,
                      path_part: str | None = None) -> list:
    """Readable images under `path_prefix`, with `path_part` in their path after a slash (a
    folder or file name that starts with it), whose date (EXIF, else mtime) is in range."""
    conditions = [ImageRow.status == "ok"]
    if path_prefix:
        conditions.append(func.substr(ImageRow.path, 1, len(path_prefix)) == path_prefix)
    if path_part:
        conditions.append(ImageRow.path.contains("/" + path_part.lstrip("/"), autoescape=True))
    if after:
        conditions.append(date_condition(after, ">="))
    if before:
        conditions.append(date_condition(before, "<"))
    return conditions


def bump_generation(session: Session) -> None:
    row = session.get(MetaRow, "generation", with_for_update=True)  # no lost update on PostgreSQL
    if row is None:
        session.add(MetaRow(key="generation", value="1"))
    else:
        row.value = str(int(row.value) + 1)


ROW_FIELDS = ("path", "root", "content_hash", "size", "mtime", "width", "height", "taken_at", "caption",
              "text", "picture_hash", "status", "error")


def row_values(image: ImageFile, now: datetime) -> dict:
    return {name: getattr(image, name) for name in ROW_FIELDS} | {"indexed_at": now}
