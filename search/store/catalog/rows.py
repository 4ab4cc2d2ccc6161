"""Rows as the catalog writes and reads them, and the conditions it filters them by."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime

from sqlalchemy import func, or_
from sqlalchemy.orm import Session

from ...display import readable
from ...media import textmatch
from ...records import ImageFile, ImageRecord, Selection
from .dates import local, seconds
from .paths import to_text
from .schema import ImageRow, MetaRow


def record(row: ImageRow) -> ImageRecord:
    return ImageRecord(**{f.name: getattr(row, f.name) for f in fields(ImageRecord)})


def date_bound(bound: datetime) -> float:
    """A date filter's bound as `dated` holds dates: `bound` is naive local time, as EXIF
    dates are; an aware one is converted to it."""
    return seconds(local(bound), 0.0)


def under(folder: str):
    """Paths in the folder `folder` or below it (`/x/shapes` holds `/x/shapes/a.png`, not
    `/x/shapes_b/a.png`), or the file `folder` itself."""
    prefix = to_text(folder.rstrip("/") + "/")  # as stored: the function's side is not typed
    return or_(ImageRow.path == folder, func.substr(ImageRow.path, 1, len(prefix)) == prefix)


def conditions(selection: Selection) -> list:
    """Readable images and moments (`media`: of that kind) under `path_prefix`, with
    `path_part` in their path after a slash (a folder or file name that starts with it),
    whose date (EXIF, else mtime) is in range.
    (The caption and text conditions are full-text searches: `fulltext`.)"""
    found = [ImageRow.status == "ok"]
    if selection.media:
        found.append(ImageRow.media == selection.media)
    if selection.path_prefix:
        found.append(under(selection.path_prefix))
    if selection.path_part and selection.path_part.startswith("/"):  # an absolute one is a folder
        found.append(under(selection.path_part))
    elif selection.path_part:
        found.append(ImageRow.path.contains("/" + selection.path_part, autoescape=True))
    if selection.after:
        found.append(ImageRow.dated >= date_bound(selection.after))
    if selection.before:
        found.append(ImageRow.dated < date_bound(selection.before))
    return found


def item():
    """An item of the catalog: an image or a video, not a video's moment."""
    return ImageRow.parent.is_(None)


def searched():
    """What vector search finds: images and moments, not a video's own row (it has no vectors)."""
    return or_(ImageRow.media == "image", ImageRow.parent.is_not(None))


def bump_generation(session: Session) -> int:
    """The catalog's generation, one up: what this transaction's rows are written at."""
    row = session.get(MetaRow, "generation", with_for_update=True)  # no lost update on PostgreSQL
    if row is None:
        row = MetaRow(key="generation", value="0")
        session.add(row)
    row.value = str(int(row.value) + 1)
    return int(row.value)


ROW_FIELDS = ("path", "root", "content_hash", "size", "mtime", "width", "height", "taken_at", "caption",
              "text", "picture_hash", "status", "error", "media", "start_s", "end_s",
              "frame_s", "inode")
# what a changed file's row takes from the second row that replaces it (`publishing`): all but its path
CONTENT = (*(name for name in ROW_FIELDS if name != "path"), "indexed_at", "dated", "generation", "text_key")


def row_values(image: ImageFile, now: datetime, generation: int) -> dict:
    error = image.error and readable(image.error)  # an error names its file, whatever its bytes
    return ({name: getattr(image, name) for name in ROW_FIELDS}
            | {"error": error, "indexed_at": now, "dated": seconds(image.taken_at, image.mtime),
               "generation": generation, "text_key": text_key(image.text)})


def text_key(text: str | None) -> str | None:
    """What the `text_key` column holds for `text` (migration 0007), written with it."""
    return None if text is None else textmatch.key(text)
