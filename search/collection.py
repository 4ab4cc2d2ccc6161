"""`Collection`: an index folder, the one object the front ends use for it.

It owns the catalog (the store of record), the vector index (derived from the catalog:
`snapshots`) and the thumbnails, and keeps them in step: every write goes through it, one
writer at a time (`writing`), and reaches all three. `refresh()` brings a reader up to date
with what another writer committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import duplicates
from .catalog import FILENAME, Catalog, database_url
from .catalog_view import CatalogView
from .config import IndexType, choices
from .errors import CollectionError
from .features import KEYS, Features
from .records import ImageFile, ImageRecord, ModelInfo
from .schemas import Duplicates, Stats
from .scoring import Each
from .snapshots import DEFAULT_POLICY, SNAPSHOT, IndexPolicy, Wanted, load_current, rebuild
from .thumbnails import Thumbnails
from .vectors import Candidates, MemoryIndex
from .writer import OPENING, IndexBusy, exclusive, held

log = logging.getLogger("blip2_search")
__all__ = ["SNAPSHOT", "Collection", "CollectionError", "IndexPolicy", "ModelInfo"]


class Collection(CatalogView):
    def __init__(self, folder: Path, catalog: Catalog, policy: IndexPolicy = DEFAULT_POLICY) -> None:
        super().__init__(catalog)
        self.folder = folder
        self.policy = policy
        self._vectors: MemoryIndex | None = None
        self.snapshot_state = "none"  # how the vector index was obtained: loaded / rebuilt / new
        self.thumbnails = Thumbnails(folder)
        self._writing = False  # this object holds the writer lock
        self._refreshing = threading.Lock()

    @classmethod
    def open(cls, folder: Path, *, create: bool = False, url: str | None = None,
             policy: IndexPolicy = DEFAULT_POLICY) -> Collection:
        """Open an index folder; `create` makes it when missing (the `index` command); `url`
        puts the catalog in another database (the settings' `database_url`)."""
        folder = Path(folder).expanduser().resolve()
        catalog = folder / FILENAME
        if not create and url is None and not catalog.exists():
            hint = "run `blip2-search index PATH` first, or pass --index"
            raise CollectionError(f"no index at {folder}: {hint}")
        if url is None and catalog.is_file() and catalog.stat().st_size == 0 and (
                (folder / SNAPSHOT).exists() or Thumbnails(folder).any()):
            raise CollectionError(f"the catalog {catalog} is empty (0 bytes) but the folder holds a vector "
                                  "snapshot or thumbnails: restore catalog.db from a backup, or move the "
                                  "folder away and index again")
        folder.mkdir(parents=True, exist_ok=True)
        try:  # two processes creating (or migrating) one catalog at once would both create it
            with exclusive(folder, name=OPENING):
                catalog_store = Catalog.open(database_url(folder, url))
        except OSError:  # a folder this reader may not write (or a full disk): the catalog as it is
            catalog_store = Catalog.open(database_url(folder, url))
        collection = cls(folder, catalog_store, policy)
        if collection.model is not None:
            collection._sync_vectors()
        return collection

    def close(self) -> None:
        self._catalog.close()

    # -- the model that built it --------------------------------------------------------------

    def bind_model(self, info: ModelInfo) -> None:
        """Record the model on first use; refuse another model on an existing index."""
        if self.model is None:
            self._catalog.set_meta(model=info.name, queries=info.queries, dim=info.dim)
            self._vectors = self._wanted().empty()
            self._vectors.generation = self._catalog.generation
            self.snapshot_state = "new"
        else:
            self.check_model(info.name, (info.queries, info.dim))

    # -- the vector index's kind --------------------------------------------------------------

    def set_index_type(self, index_type: IndexType) -> None:
        """Choose the vector index kind (auto, exact or compressed); an existing index is
        rebuilt into it from the catalog's vectors, with no model call."""
        if index_type not in choices(IndexType):
            known = ", ".join(choices(IndexType))
            raise CollectionError(f"unknown index type {index_type!r}: use one of {known}")
        if index_type != self.index_type:
            self._catalog.set_meta(index_type=index_type)
            if self._vectors is not None:
                self.save()

    # -- reading ------------------------------------------------------------------------------

    def stats(self) -> Stats:
        counts, model, vectors = self._catalog.stats(), self.model, self._vectors
        with_features, feature_bytes = self._catalog.feature_totals()
        return Stats(
            images=counts["images"], vectors=vectors.ntotal if vectors else 0, failed=counts["failed"],
            model=model.name if model else None, queries_per_image=model.queries if model else None,
            dim=model.dim if model else None, index=str(self.folder), generation=self._catalog.generation,
            index_type=self.index_type, vector_index=vectors.kind if vectors else None,
            features=with_features, feature_bytes=feature_bytes,
        )

    def candidates(self, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None = None,
                   depth: int | None = None) -> list[Candidates]:
        """The vector index's first stage for each (D,) vector; none before anything is indexed."""
        vectors = self._vectors
        return [] if vectors is None else vectors.search(text_vecs, k, allowed, depth)

    def read_vectors(self, ids: np.ndarray, each: Each) -> tuple[np.ndarray, np.ndarray]:
        """(the ids that have stored vectors, ascending; `each` applied to each part of their
        (m, Q, D) float16 vectors, on the thread that read it): `scoring.Read`."""
        model = self.model
        return self._catalog.vectors_many(ids, (model.queries, model.dim), each)

    def vectors_of(self, image_id: int) -> np.ndarray | None:
        """(Q, D) float16 stored vectors of one image."""
        model = self.model
        return self._catalog.vectors(image_id, (model.queries, model.dim))

    def iter_vectors(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids, (n, Q, D) vectors) of every indexed image: from memory when the index
        holds them (exact), else from the catalog."""
        if self._vectors is not None and self._vectors.kind == "exact":
            yield from self._vectors.iter_vectors()
        elif self.model is not None:
            yield from self._catalog.iter_vectors((self.model.queries, self.model.dim))

    def duplicates(self, threshold: float | None = None) -> Duplicates:
        """Groups of images that show the same picture (`search.duplicates`); nothing is moved
        or deleted. `threshold`: 0 to 1, None for the calibrated default."""
        return duplicates.find(self.fingerprints(), self.iter_vectors(), threshold)

    @property
    def indexed(self) -> int:
        """Images the vector index holds."""
        return len(self._vectors) if self._vectors is not None else 0

    def thumbnail(self, record: ImageRecord) -> Path | None:
        """The thumbnail of an indexed image, made again from its file (no model call) when it
        is missing or damaged; None when there is neither."""
        return self.thumbnails.of(record) if record.status == "ok" else None

    # -- writing: the catalog, the vector index and the thumbnails in step -------------------

    def commit(self, files: list[ImageFile]) -> list[int]:
        """Write a batch of files in one transaction (the batch is in, or not at all), their
        thumbnails first (every committed image has one), then bring the vector index in step:
        a file that became unreadable loses its old vectors. Returns each file's id."""
        for file in files:
            if file.vectors is not None and file.thumbnail is not None:
                self.thumbnails.write(file.content_hash, file.thumbnail)
        ids = np.array(self._catalog.write(files), dtype=np.int64)
        readable = np.array([file.vectors is not None for file in files], dtype=bool)
        if self._vectors is None:  # no model yet (only failed files so far): no vectors to keep
            return ids.tolist()
        self._vectors.remove(ids[~readable])
        if readable.any():
            self._vectors.add(ids[readable], np.stack([f.vectors for f in files if f.vectors is not None]))
        return ids.tolist()

    def copy(self, twin: ImageRecord, file: ImageFile) -> int:
        """A new path holding the content of the indexed `twin`: its results, no model call."""
        model = self.model
        vectors = self._catalog.vectors(twin.id, (model.queries, model.dim))
        features = self._catalog.features([twin.id], KEYS).get(twin.id)
        copied = replace(file, content_hash=twin.content_hash, width=twin.width, height=twin.height,
                         taken_at=twin.taken_at, caption=twin.caption, text=twin.text,
                         picture_hash=twin.picture_hash, vectors=vectors, features=features)
        return self.commit([copied])[0]

    def touch(self, image_id: int, file: ImageFile) -> None:
        """Same content, new size or mtime."""
        self._catalog.touch(image_id, size=file.size, mtime=file.mtime)

    def move(self, image_id: int, file: ImageFile) -> None:
        """A file found at a new path with known content keeps its row, vectors and caption."""
        self._catalog.move(image_id, path=file.path, root=file.root, size=file.size, mtime=file.mtime)

    def remove(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        self._catalog.remove(ids)
        if self._vectors is not None:
            self._vectors.remove(np.array(ids, dtype=np.int64))

    def keep_features(self) -> None:
        self._catalog.set_meta(features="kept")

    def add_features(self, features: dict[int, dict[str, Features]]) -> None:
        self._catalog.add_features(features)

    def set_readings(self, readings: dict[int, tuple[str | None, int | None]]) -> None:
        """(text, picture hash) of images already indexed, by id; None leaves one as it is."""
        self._catalog.set_readings(readings)

    def save(self) -> None:
        """Write the vector snapshot, tagged with the catalog generation it covers. An index of
        the wrong kind, or a compressed one that outgrew its training sample, is rebuilt first."""
        if self._vectors is None:
            return
        if not self._wanted().fits(self._vectors):
            self._vectors = rebuild(self._catalog, self._wanted())
        self._vectors.generation = self._catalog.generation
        self._vectors.save(self.folder / SNAPSHOT)

    @contextmanager
    def writing(self, *, wait: bool = True, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the index's writer lock (one writer at a time: `search.writer`), with the
        vector index brought in step with what writers before this one committed. Without
        `wait`, another writer's hold is an `IndexBusy` naming it."""
        with exclusive(self.folder, wait=wait, waiting=waiting), self._catalog.exclusive(wait=wait,
                                                                                          waiting=waiting):
            self._writing = True
            try:
                self.refresh()
                yield
            finally:
                self._writing = False

    def refresh(self) -> bool:
        """Bring the vector index in step with what another writer committed (an index job, or
        another process): the snapshot when it matches the catalog, else a rebuild in memory.
        While another writer is at work, the view stays as it is, so a reader answers from
        the collection as it was before that writer, never from half of its work. Returns
        whether anything changed."""
        with self._refreshing:
            generation = self._catalog.generation  # one query a request in the common case: no change
            if self._vectors is not None and self._vectors.generation == generation:
                return False
            if self.model is None:
                return False
            if not self._writing and held(self.folder):
                return False
            wanted = self._wanted()
            self._vectors = (load_current(self.folder / SNAPSHOT, wanted, self._catalog)
                             or rebuild(self._catalog, wanted))  # one assignment: old view or new
            return True

    # -- internals ----------------------------------------------------------------------------

    def _sync_vectors(self) -> None:
        """On open: the snapshot when it matches the catalog, else a rebuild from the
        catalog's vectors (never an empty index), saved when no writer is at work and the
        disk takes it; reading never needs to write."""
        wanted, path = self._wanted(), self.folder / SNAPSHOT
        index = load_current(path, wanted, self._catalog)
        if index is not None:
            self._vectors, self.snapshot_state = index, "loaded"
            return
        self._vectors, self.snapshot_state = rebuild(self._catalog, wanted), "rebuilt"
        try:
            with exclusive(self.folder, wait=False):
                for stale in self.folder.glob(f".{SNAPSHOT}.*.tmp"):
                    stale.unlink(missing_ok=True)  # left by a write that was killed before its rename
                self._vectors.save(path)
        except IndexBusy:
            pass  # the writer at work saves its own when it is done
        except OSError as exc:
            log.warning("the rebuilt vector index is kept in memory only: it could not be saved (%s)",
                        exc.strerror or exc)

    def _wanted(self) -> Wanted:
        model = self.model
        return Wanted(model.queries, model.dim, self.index_type, self.policy)

