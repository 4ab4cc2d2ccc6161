"""A video's moments as the catalog holds them (migration 0008): rows whose `parent` is the
video's row, read and kept in step with it here.

A moment's path is its video's path with `#SECONDS@HASH` after it (`records.moment_path`): unique,
under the same folder as its video (so `path:` filters hold for both), and new whenever the
video's content is (its hash is in it), so a changed video's new moments never take the rows
of its old ones, which go once the new ones are written (`stale`).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from ...records import ImageRecord
from .blobs import chunks
from .rows import record
from .schema import ImageRow
from .view import View


class Moments:
    def __init__(self, engine: Engine, view: View) -> None:
        self._engine = engine
        self._view = view

    def of(self, video: int) -> list[ImageRecord]:
        """The moments of `video` that readers see, in time order."""
        with Session(self._engine) as session:
            rows = session.scalars(select(ImageRow).where(ImageRow.parent == video, ImageRow.status == "ok",
                                                          self._view.visible()).order_by(ImageRow.start_s))
            return [record(row) for row in rows]

    def at(self, video: int, time_s: float) -> ImageRecord | None:
        """The moment of `video` shown at `time_s`: the last one starting at or before it (the
        first when it is before them all); None when the video has none."""
        moments = self.of(video)
        before = [m for m in moments if (m.start_s or 0.0) <= time_s]
        return before[-1] if before else (moments[0] if moments else None)

    def children(self, videos: Iterable[int]) -> list[int]:
        """Every moment row of `videos`, published or not (what goes with them)."""
        found: list[int] = []
        with Session(self._engine) as session:
            for part in chunks(list(videos)):
                found += session.scalars(select(ImageRow.id).where(ImageRow.parent.in_(part)))
        return found

    def stale(self, video: int, kept: Iterable[int]) -> list[int]:
        """The moment rows of `video` other than `kept` (its content's new ones)."""
        kept = set(kept)
        return [i for i in self.children([video]) if i not in kept]

    def fingerprints(self) -> dict[int, list[tuple[float, float, int]]]:
        """Readable videos' moments as (start, end, picture hash), by video id, in time order."""
        columns = (ImageRow.parent, ImageRow.start_s, ImageRow.end_s, ImageRow.picture_hash)
        with Session(self._engine) as session:
            moments = select(*columns).where(ImageRow.parent.is_not(None), ImageRow.status == "ok",
                                             self._view.visible())
            rows = session.execute(moments.order_by(ImageRow.start_s))
            found: dict[int, list[tuple[float, float, int]]] = {}
            for parent, start, end, picture in rows:
                found.setdefault(parent, []).append((start or 0.0, end or 0.0, picture or 0))
        return found


def follow_move(session: Session, video: int, old_path: str, new_path: str, root: str) -> None:
    """A moved video's moments: their paths follow its new one."""
    for row in session.scalars(select(ImageRow).where(ImageRow.parent == video)):
        row.path, row.root = new_path + row.path[len(old_path):], root


def follow_date(session: Session, video: int, dated: float | None) -> None:
    """A touched video's moments take its new date."""
    session.execute(update(ImageRow).where(ImageRow.parent == video).values(dated=dated),
                    execution_options={"synchronize_session": False})
