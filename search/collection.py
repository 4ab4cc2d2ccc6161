"""`Collection`: an index folder, the one object the front ends use for it.

It owns the catalog (the store of record), the vector index (derived from the catalog:
`store.snapshot`) and the thumbnails, and keeps them in step. Reads go to `catalog` directly
(rows, listings, full text, stored features); every write goes through the collection, one
writer at a time (`writing`), and reaches all three. `refresh` brings a reader up to date
with what another writer published, in the background when a request asks.

What a reader sees: the collection as its vector index covers it. The catalog's reads follow
that index's generation (`catalog.view`), so stats, listings, stored vectors and vector
search agree, and a refresh moves them together. An index run (`writing`) commits batch by
batch but publishes only as it ends (an error included): until then readers see the
collection as it was, then its new images, changed files and removals all at once. Moves and
touched dates change rows in place (same vectors). A killed run's batches are published as
the next writer starts; a write outside `writing`, at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from .config import Order
from .errors import CatalogError, CollectionError
from .records import ImageFile, ImageRecord, Selection, entries, moment_path
from .remembered import Remembered
from .schemas import ImageInfo, ImagePage, Stats
from .store.catalog import FILENAME, Catalog, database_url
from .store.catalog.blobs import Each
from .store.features import KEYS, Features
from .store.lock import OPENING, exclusive
from .store.shards import ShardedIndex
from .store.snapshot import DEFAULT_POLICY, SNAPSHOT, IndexPolicy, SyncedIndex, Wanted
from .store.thumbnails import Thumbnails
from .store.vectors import Candidates, MemoryIndex

T = TypeVar("T")
__all__ = ["SNAPSHOT", "Collection", "CollectionError", "IndexPolicy"]


class Collection(Remembered):
    def __init__(self, folder: Path, catalog: Catalog, policy: IndexPolicy = DEFAULT_POLICY,
                 vectors: ShardedIndex | None = None) -> None:
        self.folder = folder
        self.policy = policy
        self.catalog = catalog  # for reading; writes go through the methods below
        self.thumbnails = Thumbnails(folder)
        # the vector index, in step: in memory, or in shards (read-only) where `vectors` is given
        self._index = vectors if vectors is not None else SyncedIndex(folder, catalog, self._wanted)
        catalog.view.follow(lambda: self._index.generation)  # reads see what the vector index holds
        self._memo: tuple[int, dict] = (-1, {})  # (catalog generation, results computed at it)
        self._memo_lock = threading.Lock()

    @classmethod
    def open(cls, folder: Path, *, create: bool = False, url: str | None = None,
             policy: IndexPolicy = DEFAULT_POLICY, vectors: ShardedIndex | None = None) -> Collection:
        """Open an index folder; `create` makes it when missing (the `index` command); `url`
        puts the catalog in another database (the settings' `database_url`); `vectors`: its
        vectors are in shards (`store.shards`), and this collection reads them there."""
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
        collection = cls(folder, catalog_store, policy, vectors)
        if collection.model is not None:
            collection._index.open()
        return collection

    def close(self) -> None:
        self._index.close()
        self.catalog.close()

    @property
    def snapshot_state(self) -> str:
        """How the vector index was obtained: loaded (its snapshot), rebuilt, new, or none."""
        return self._index.state

    # -- reading ------------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The catalog generation this collection's reads see (its vector index's)."""
        return self._index.generation if self._index.current else self.catalog.published

    def stats(self) -> Stats:
        vectors = self._index.current  # its images are the ones counted
        counts, model = self.catalog.stats(at=vectors.generation if vectors else None), self.model
        with_features, feature_bytes = self.catalog.features.totals()
        return Stats(
            images=counts["images"], vectors=vectors.ntotal if vectors else 0, failed=counts["failed"],
            model=model.name if model else None, queries_per_image=model.queries if model else None,
            dim=model.dim if model else None, index=str(self.folder), generation=self.generation,
            index_type=self.index_type, vector_index=vectors.kind if vectors else None,
            features=with_features, feature_bytes=feature_bytes, videos=counts["videos"],
            moments=counts["moments"],
        )

    def browse(self, offset: int, limit: int, order: Order = "newest") -> ImagePage:
        """A page of every indexed image, newest or oldest first (EXIF date, else modified)
        or by path, and how many there are: ordered and cut by the catalog."""
        total, ids = self.catalog.listing.page(Selection(), offset, limit, order)
        records = self.catalog.get_many(ids)  # a video is listed by a moment of it: shown as itself
        videos = self.catalog.get_many(r.parent for r in records.values() if r.parent is not None)
        shown = [videos.get(records[i].parent) if records[i].parent is not None else records[i]
                 for i in ids if i in records]
        return ImagePage(total=total,
                         images=[ImageInfo.of(record) for record in shown if record is not None])

    def candidates(self, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None = None,
                   depth: int | None = None) -> list[Candidates]:
        """The vector index's first stage for each (D,) vector; none before anything is indexed."""
        vectors = self._index.current
        return [] if vectors is None else vectors.search(text_vecs, k, allowed, depth)

    @property
    def sharded(self) -> ShardedIndex | None:
        """The vector index when it is in shards (similar images ask them), else None."""
        return self._index if isinstance(self._index, ShardedIndex) else None

    @property
    def exact_index(self) -> MemoryIndex | None:
        """The vector index where it holds every vector (the exact kind: similar images score
        every image from it), else None (compressed, or nothing indexed yet)."""
        return self._index.exact

    def read_vectors(self, ids: np.ndarray, each: Each) -> tuple[np.ndarray, np.ndarray]:
        """(the ids that have stored vectors, ascending; `each` applied to each part of their
        (m, Q, D) float16 vectors, on the thread that read it): `query.scoring.Read`."""
        model = self.model
        return self.catalog.vectors.many(ids, (model.queries, model.dim), each)

    def vectors_of(self, image_id: int) -> np.ndarray | None:
        """(Q, D) float16 stored vectors of one image."""
        model = self.model
        return self.catalog.vectors.one(image_id, (model.queries, model.dim))

    def iter_vectors(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids, (n, Q, D) vectors) of every indexed image: from memory when the index
        holds them (exact), else from the catalog."""
        if (exact := self._index.exact) is not None:
            yield from exact.iter_vectors()
        elif self.model is not None:
            yield from self.catalog.vectors.iterate((self.model.queries, self.model.dim))

    @property
    def indexed(self) -> int:
        """Images the vector index holds."""
        return len(self._index.current or ())

    def thumbnail(self, record: ImageRecord) -> Path | None:
        """The thumbnail of an indexed image, made again from its file (no model call) when it
        is missing or damaged; None when there is neither."""
        return self.thumbnails.of(record) if record.status == "ok" else None

    def memo(self, key: object, compute: Callable[[], T]) -> T:
        """`compute()`, kept until the catalog changes: for a result that depends on the
        collection alone (the duplicate groups). Kept only when the vector index was in step
        with the catalog as it was computed."""
        generation = self.generation
        with self._memo_lock:
            if self._memo[0] != generation:
                self._memo = (generation, {})
            if key in self._memo[1]:
                return self._memo[1][key]
        value = compute()
        vectors = self._index.current
        with self._memo_lock:
            if self._memo[0] == generation and (vectors is None or vectors.generation == generation):
                self._memo[1][key] = value
        return value

    # -- writing: the catalog, the vector index and the thumbnails in step -------------------

    def commit(self, files: list[ImageFile]) -> list[int]:
        """Write a batch of files in one transaction (the batch is in, or not at all), a
        video with its moments, their thumbnails first (every committed image, moment and
        video has one), then bring the vector index in step: a file that became unreadable
        loses its old vectors, a changed video its old moments. Returns each file's id."""
        rows = entries(files)
        shown = [row for row in rows if row.status == "ok" and row.thumbnail is not None]
        made = [row.content_hash for row in shown if not self.thumbnails.whole(row.content_hash)]
        with self._index.changing() as vectors:  # a writer's own: no reader shares it
            try:
                for row in shown:
                    self.thumbnails.write(row.content_hash, row.thumbnail)
                ids = np.array(self.catalog.write(rows, publish=not self._index.writing), dtype=np.int64)
            except (CatalogError, OSError):  # nothing of the batch stays: a full disk gets its space back
                self.thumbnails.forget(made)
                raise
            if vectors is not None:  # else no model yet (only failed files so far): no vectors to keep
                readable = np.array([row.vectors is not None for row in rows], dtype=bool)
                vectors.remove(ids[~readable])
                if readable.any():
                    vectors.add(ids[readable], np.stack([r.vectors for r in rows if r.vectors is not None]))
        written = dict(zip(map(id, rows), ids.tolist(), strict=True))
        for file in files:
            if file.media == "video":
                kept = [written[id(moment)] for moment in file.moments or ()]
                self.remove(self.catalog.moments.stale(written[id(file)], kept))
        return [written[id(file)] for file in files]

    def copy(self, twin: ImageRecord, file: ImageFile) -> int:
        """A new path holding the content of the indexed `twin` (a video with its moments):
        its results, no model call."""
        copied = self._copied(twin, file)
        if twin.media == "video":
            moments = [self._copied(moment, ImageFile(path="", size=0, mtime=file.mtime, root=file.root))
                       for moment in self.catalog.moments.of(twin.id)]
            paths = [moment_path(file.path, m.content_hash, m.start_s) for m in moments]
            moments = [replace(m, path=path, of=file.path) for m, path in zip(moments, paths, strict=True)]
            copied = replace(copied, moments=moments)
        return self.commit([copied])[0]

    def _copied(self, twin: ImageRecord, file: ImageFile) -> ImageFile:
        model = self.model
        vectors = self.catalog.vectors.one(twin.id, (model.queries, model.dim))
        features = self.catalog.features.read([twin.id], KEYS).get(twin.id)
        return replace(file, content_hash=twin.content_hash, width=twin.width, height=twin.height,
                       taken_at=twin.taken_at, caption=twin.caption, text=twin.text,
                       picture_hash=twin.picture_hash, vectors=vectors, features=features, media=twin.media,
                       start_s=twin.start_s, end_s=twin.end_s, frame_s=twin.frame_s,
                       moments=[] if twin.media == "video" and twin.parent is None else None)

    def touch(self, touched: list[tuple[int, ImageFile]]) -> None:
        """Same content, new size or mtime: (id, file) each, written together."""
        self.catalog.touch([(image_id, f.size, f.mtime, f.inode) for image_id, f in touched])

    def move(self, image_id: int, file: ImageFile) -> None:
        """A file found at a new path with known content keeps its row, vectors and caption."""
        self.catalog.move(image_id, path=file.path, root=file.root, size=file.size, mtime=file.mtime,
                          inode=file.inode)

    def remove(self, ids: Iterable[int]) -> None:
        """Drop images, and videos with their moments: at once, or, for a writer at work, as
        it publishes."""
        ids = list(ids)
        if ids:
            self._index.remove(ids + self.catalog.moments.children(ids))

    def add_features(self, features: dict[int, dict[str, Features]]) -> None:
        self.catalog.add_features(features)

    def set_readings(self, readings: dict[int, tuple[str | None, int | None]]) -> None:
        """(text, picture hash) of images already indexed, by id; None leaves one as it is."""
        self.catalog.set_readings(readings)

    def save(self) -> None:
        """Publish what this writer committed (readers see all of it from here), then write
        the vector snapshot, tagged with the generation it covers."""
        self._index.save()

    @contextmanager
    def writing(self, *, wait: bool = True, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the index's writer lock (one writer at a time: `store.lock`), with the vector
        index in step with what writers before this one committed; what is written meanwhile
        is published by `save` or as it ends (`SyncedIndex.writer`). Without `wait`, another
        writer's hold is an `IndexBusy` naming it."""
        with (exclusive(self.folder, wait=wait, waiting=waiting),
              self.catalog.exclusive(wait=wait, waiting=waiting), self._index.writer()):
            yield

    def refresh(self, *, background: bool = False) -> bool:
        """Bring the vector index in step with what another writer published
        (`SyncedIndex.refresh`: a request asks with `background`, and keeps the last
        consistent view meanwhile). Returns whether it changed."""
        return self._index.refresh(background=background)

    # -- internals ----------------------------------------------------------------------------

    def _wanted(self) -> Wanted | None:
        model = self.model
        return None if model is None else Wanted(model.queries, model.dim, self.index_type, self.policy)
