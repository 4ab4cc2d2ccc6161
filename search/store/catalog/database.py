"""`Catalog`: the store of record, on SQLite (WAL) by default or any SQLAlchemy URL.

Callers see plain dataclasses and numpy arrays; SQLAlchemy stays inside this package. Rows
are read here; what reads them in bulk is composed in: `vectors` (stored vectors, `blobs`),
`listing` (filters, pages, fingerprints), `fulltext` (captions and text read in images) and
`features` (stored encoder output). The `generation` counter goes up in the same transaction
as every change to stored vectors, so the vector index snapshot can tell whether it is behind.

Every read sees the rows of one generation, the catalog's `view`: a writer at work writes
unpublished (`write(publish=False)`) and readers see none of it until it `publish`es, then
all of it at once (`publishing`). Moving a file to a new path or touching its date changes
a published row in place: no image's vectors change, so readers agree with themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ...errors import CatalogError
from ...records import ImageFile, ImageRecord
from ..features import Features
from . import featurestore, publishing
from .albums import AlbumStore
from .blobs import READERS, StoredVectors, chunks, encode
from .connect import reason, sqlite_pragmas
from .dates import seconds
from .featurestore import FeatureStore
from .fulltext import FullText
from .listing import Listing
from .locks import writer_lock
from .moments import Moments, follow_date, follow_move
from .rows import bump_generation, item, record, row_values, text_key, under
from .schema import ImageRow, MetaRow, VectorRow
from .view import PUBLISHED, View

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_KEY = 0x42_4C_49_50_33  # the advisory lock under which a PostgreSQL catalog is migrated


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.view = View()  # the generation reads see (`view`): a collection pins its vector index's
        self.vectors = StoredVectors(engine, self.view)
        self.fulltext = FullText(engine, self.view)
        self.listing = Listing(engine, self.fulltext, self.view)
        self.features = FeatureStore(engine, self.view)
        self.moments = Moments(engine, self.view)
        self.albums = AlbumStore(engine, self.view)

    @classmethod
    def open(cls, url: str) -> Catalog:
        """Connect and migrate the schema to the newest version; a database that cannot be
        read is a `CatalogError` in one line."""
        engine = create_engine(url, pool_size=READERS + 4)  # parallel vector reads, and the rest
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", sqlite_pragmas)
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with engine.begin() as connection:
                if engine.dialect.name == "postgresql":  # processes on other machines migrate in turn
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_KEY})
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except DBAPIError as exc:
            engine.dispose()
            where = engine.url.render_as_string(hide_password=True)
            raise CatalogError(f"the catalog at {where} cannot be read ({reason(exc)}): restore it from a "
                               "backup, or move it away and index again") from None
        return cls(engine)

    def close(self) -> None:
        self.vectors.close()
        self._engine.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        """A write transaction; the database refusing it (a full disk, a lost server) is a
        `CatalogError` in one line, and the transaction is rolled back whole."""
        try:
            with Session(self._engine) as session, session.begin():
                yield session
        except DBAPIError as exc:
            raise CatalogError(f"the catalog could not be written ({reason(exc)}); nothing of this "
                               "batch was kept") from None

    def exclusive(self, *, wait: bool = True, waiting: Callable[[str], None] | None = None):
        """A context holding the database's writer lock (`locks`)."""
        return writer_lock(self._engine, wait=wait, waiting=waiting)

    # -- facts about the index ----------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        with Session(self._engine) as session:
            return {row.key: row.value for row in session.scalars(select(MetaRow))}

    def set_meta(self, **values: str | int) -> None:
        with self._transaction() as session:
            for key, value in values.items():
                session.merge(MetaRow(key=key, value=str(value)))

    @property
    def generation(self) -> int:
        """Counts the catalog's changes, published or not."""
        return int(self.meta().get("generation", 0))

    @property
    def published(self) -> int:
        """The newest generation readers may see."""
        return int(self.meta().get(PUBLISHED, 0))

    def stats(self, at: int | None = None) -> dict[str, int]:
        """Images, videos and their moments, failed files, and rows with vectors, at generation
        `at` (None: the view's)."""
        visible = self.view.visible(at)
        with Session(self._engine) as session:
            kinds = select(ImageRow.status, ImageRow.media, ImageRow.parent.is_(None), func.count()) \
                .where(visible).group_by(ImageRow.status, ImageRow.media, ImageRow.parent.is_(None))
            counts = {(status, media, bool(whole)): n for status, media, whole, n in session.execute(kinds)}
            with_vectors = select(func.count()).select_from(VectorRow).join(ImageRow).where(visible)
            vectors = session.scalar(with_vectors) or 0
        return {"images": counts.get(("ok", "image", True), 0),
                "videos": counts.get(("ok", "video", True), 0),
                "moments": counts.get(("ok", "video", False), 0),
                "failed": sum(n for (status, _, whole), n in counts.items() if status == "failed" and whole),
                "with_vectors": vectors}

    # -- rows ---------------------------------------------------------------------------------

    def get(self, image_id: int) -> ImageRecord | None:
        with Session(self._engine) as session:
            row = session.scalar(select(ImageRow).where(ImageRow.id == image_id, self.view.visible()))
            return record(row) if row else None

    def get_many(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        ids = list(ids)
        found: dict[int, ImageRecord] = {}
        with Session(self._engine) as session:
            for part in chunks(ids):
                rows = session.scalars(select(ImageRow).where(ImageRow.id.in_(part), self.view.visible()))
                found |= {row.id: record(row) for row in rows}
        return found

    def at_path(self, path: str) -> ImageRecord | None:
        with Session(self._engine) as session:
            row = session.scalar(select(ImageRow).where(ImageRow.path == path, self.view.visible()))
            return record(row) if row else None

    def under(self, root: str) -> dict[str, ImageRecord]:
        """Rows whose path lies under the folder `root` (whatever root they were indexed from), by path."""
        with Session(self._engine) as session:
            inside = select(ImageRow).where(under(root), item(), self.view.visible())
            return {row.path: record(row) for row in session.scalars(inside)}

    def with_hash(self, content_hash: str) -> list[ImageRecord]:
        """Readable images with this content."""
        with Session(self._engine) as session:
            rows = session.scalars(select(ImageRow).where(ImageRow.content_hash == content_hash,
                                                          ImageRow.status == "ok", self.view.visible()))
            return [record(row) for row in rows]

    # -- writing (through `Collection`, which keeps the vector index and thumbnails in step) --

    def write(self, images: list[ImageFile], *, publish: bool = True) -> list[int]:
        """Insert or replace rows by path, with their vectors, in one transaction; returns each
        image's id. Set-based: one lookup, then bulk statements, whatever the batch size (a
        path given twice keeps its last record). With `publish` False (a writer at work),
        readers see none of it until `publish`: new rows wait above the published generation,
        and a published row's new content waits in a second row (`publishing`). A video's
        moments (`records.entries`: each after its video, `of` its path) get the id the video
        keeps as their `parent`."""
        now = datetime.now(UTC).replace(tzinfo=None)
        latest = {image.path: image for image in images}
        with self._transaction() as session:
            generation = bump_generation(session)
            known = self._known(session, list(latest))
            ids = {path: image_id for path, (image_id, _) in known.items()}
            publishing.drop_replacements(session, list(ids.values()))
            shown = publishing.generations(session)[1]
            later = {path for path, (_, written) in known.items() if not publish and written <= shown}
            values = {path: row_values(image, now, generation) for path, image in latest.items()}
            holders = {path: image_id for path, image_id in ids.items() if path not in later}  # in place
            if holders:
                session.execute(update(ImageRow), [{"id": holders[path], **values[path]} for path in holders])
                publishing.forget_vectors(session, list(holders.values()))
            fresh = [path for path in latest if path not in holders]
            rows = [values[path] | ({"path": publishing.placeholder(ids[path]), "replaces": ids[path]}
                                    if path in later else {}) for path in fresh]
            if rows:
                inserted = session.execute(
                    insert(ImageRow).returning(ImageRow.id, sort_by_parameter_order=True), rows)
                holders |= {path: new_id for path, (new_id,) in zip(fresh, inserted, strict=True)}
            readable = [(holders[path], image) for path, image in latest.items() if image.vectors is not None]
            if readable:
                session.execute(insert(VectorRow), [{"image_id": i, "data": encode(image.vectors)}
                                                    for i, image in readable])
            featurestore.write(session, [row for i, image in readable
                                         for row in featurestore.values(i, image.features or {})])
            parents = [{"id": holders[path], "parent": ids.get(image.of, holders.get(image.of))}
                       for path, image in latest.items() if image.of is not None]
            if parents:
                session.execute(update(ImageRow), parents)
            if publish:
                publishing.publish(session, [])
        return [ids.get(image.path, holders[image.path]) for image in images]

    def publish(self, removed: Iterable[int] = ()) -> bool:
        """Let readers see everything written so far, with the rows `removed` deleted, in one
        transaction (`publishing`). Returns whether there was anything to publish."""
        removed, meta = list(removed), self.meta()
        if not removed and meta.get(PUBLISHED, "0") == meta.get("generation", "0"):
            return False
        with self._transaction() as session:
            publishing.publish(session, removed)
        return True

    @staticmethod
    def _known(session: Session, paths: list[str]) -> dict[str, tuple[int, int]]:
        """(id, generation written at) of the rows at `paths`, published or not, by path."""
        found: dict[str, tuple[int, int]] = {}
        for chunk in chunks(paths):
            rows = session.execute(select(ImageRow.path, ImageRow.id, ImageRow.generation)
                                   .where(ImageRow.path.in_(chunk)))
            found |= {path: (image_id, written) for path, image_id, written in rows}
        return found

    def move(self, image_id: int, *, path: str, root: str, size: int, mtime: float,
             inode: int | None = None) -> None:
        """A file found at a new path with known content keeps its row, vectors and caption."""
        with self._transaction() as session:
            row = session.get(ImageRow, image_id)
            video = row.media == "video"
            if video:
                follow_move(session, image_id, row.path, path, root)
            row.path, row.root, row.size, row.mtime, row.inode = path, root, size, mtime, inode
            row.dated = seconds(row.taken_at, mtime)
            if video:
                follow_date(session, image_id, row.dated)

    def touch(self, changes: list[tuple[int, int, float, int | None]]) -> None:
        """Files whose content is unchanged but whose (size, mtime, inode) are new, as (id,
        size, mtime, inode), in one transaction (a sync that resets every mtime touches all)."""
        with self._transaction() as session:
            for image_id, size, mtime, inode in changes:
                row = session.get(ImageRow, image_id)
                row.size, row.mtime, row.dated = size, mtime, seconds(row.taken_at, mtime)
                row.inode = inode
                if row.media == "video":  # its moments take its date; an image has none
                    follow_date(session, image_id, row.dated)

    def add_features(self, features: dict[int, dict[str, Features]]) -> None:
        """Features for images already written (an index gaining them), by image then side."""
        with self._transaction() as session:
            featurestore.forget(session, list(features))
            featurestore.write(session, [row for image_id, sides in features.items()
                                         for row in featurestore.values(image_id, sides)])

    def set_readings(self, readings: dict[int, tuple[str | None, int | None]]) -> None:
        """(text, picture hash) for images already written, by id; None leaves one as it is."""
        with self._transaction() as session:
            for image_id, (written, picture) in readings.items():
                values = {"text": written, "text_key": text_key(written), "picture_hash": picture}
                changed = {name: value for name, value in values.items() if value is not None}
                if changed:
                    session.execute(update(ImageRow).where(ImageRow.id == image_id).values(**changed))

    def remove(self, ids: Iterable[int]) -> None:
        """Delete rows now, publishing with them whatever else was written."""
        ids = list(ids)
        if ids:
            self.publish(removed=ids)
