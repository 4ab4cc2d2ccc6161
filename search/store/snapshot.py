"""The vector index a collection holds, kept in step with its catalog (`SyncedIndex`): which
kind it wants, the snapshot file when that covers the catalog, else a rebuild from the
catalog's stored vectors (no model call), and a refresh when another writer published.

An index covers the catalog at the generation it is tagged with: the published one when it
was loaded or rebuilt (what a writer at work has committed since is not published, so not
in it), and the catalog's reads follow it (`catalog.view`): what a collection lists, counts
and reads is what its vector index holds, until a refresh replaces both at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CatalogError, describe
from .catalog import Catalog
from .lock import IndexBusy, exclusive, held
from .vectors import MemoryIndex, SnapshotError

log = logging.getLogger("blip2_search")

SNAPSHOT = "vectors.faiss"


@dataclass(frozen=True)
class IndexPolicy:
    """How a collection chooses and trains its vector index."""

    exact_up_to: int = 20_000  # images `auto` keeps in the exact kind; compressed above
    training_sample: int = 8_192  # images whose vectors train a compressed index's quantiser


DEFAULT_POLICY = IndexPolicy()


@dataclass(frozen=True)
class Wanted:
    """The index a collection wants: its vector shape, its kind and how to size it."""

    queries: int
    dim: int
    index_type: str  # auto, exact or compressed
    policy: IndexPolicy

    def kind(self, images: int) -> str:
        if self.index_type != "auto":
            return self.index_type
        return "compressed" if images > self.policy.exact_up_to else "exact"

    def fits(self, index: MemoryIndex) -> bool:
        """`index` is of the wanted kind for its size and needs no retraining."""
        return index.kind == self.kind(len(index)) and not index.needs_training

    def empty(self, images: int = 0) -> MemoryIndex:
        return MemoryIndex(self.queries, self.dim, self.kind(images))


def load_current(path: Path, wanted: Wanted, catalog: Catalog) -> MemoryIndex | None:
    """The snapshot at `path` when it matches the catalog as published (its generation, and a
    row for every stored vector) and fits; None when it is behind, missing, corrupt, of another
    kind, or holds another count of vectors than the catalog (a writer that saved what it had,
    unaware of another's images)."""
    try:
        index = MemoryIndex.load(path, wanted.queries, wanted.dim)
    except SnapshotError:
        return None
    if index.generation != catalog.published or not wanted.fits(index):
        return None
    return index if len(index) == catalog.stats(at=index.generation)["with_vectors"] else None


def rebuild(catalog: Catalog, wanted: Wanted) -> MemoryIndex:
    """A fresh index of the wanted kind from the catalog's vectors as published, tagged with
    that generation; a compressed one is trained first on an even sample of them (a second
    pass)."""
    generation = catalog.published
    total = catalog.stats(at=generation)["with_vectors"]
    index = wanted.empty(images=total)
    shape = (wanted.queries, wanted.dim)
    if index.kind == "compressed":
        stride = max(1, total // wanted.policy.training_sample)
        # copies: a strided view would keep each whole chunk (1 GB at a million images) alive
        sample = [v[::stride].copy() for _, v in catalog.vectors.iterate(shape, stride * 256, at=generation)]
        if sample:
            index.train(np.concatenate(sample), population=total)
    for ids, vectors in catalog.vectors.iterate(shape, at=generation):
        index.add(ids, vectors)
    index.generation = generation
    return index


class SyncedIndex:
    """The in-memory vector index of one index folder. A refresh replaces `current` whole, so
    a reader that took it answers from one consistent view; only a writer's own collection,
    which no reader shares, changes it in place. `wanted()` says the index the collection
    wants now (its model's shape and its kind), or None before it has a model."""

    def __init__(self, folder: Path, catalog: Catalog, wanted: Callable[[], Wanted | None]) -> None:
        self.folder, self.catalog, self.wanted = folder, catalog, wanted
        self.current: MemoryIndex | None = None
        self.state = "none"  # how it was obtained: loaded / rebuilt / new
        self.writing = False  # its collection holds the writer lock
        self._removed: list[int] = []  # what its writer removed: deleted from the catalog as it publishes
        self._lock = threading.Lock()  # one refresh at a time
        self._starting = threading.Lock()  # guards `_refresher`, never held while a refresh works
        self._refresher: threading.Thread | None = None  # a refresh a request started
        self._on_disk: int | None = None  # the generation of the snapshot as this index last read or wrote it

    @property
    def generation(self) -> int | None:
        """The catalog generation `current` covers (what the catalog's reads follow)."""
        current = self.current
        return None if current is None else current.generation

    @property
    def exact(self) -> MemoryIndex | None:
        """`current` where it holds every vector (the exact kind), else None."""
        current = self.current
        return current if current is not None and current.kind == "exact" else None

    def start(self, wanted: Wanted) -> None:
        """An empty index for a collection that just got its model."""
        index = wanted.empty()
        index.generation = self.catalog.published
        self.current, self.state = index, "new"

    def open(self) -> None:
        """On open: the snapshot when it matches the catalog, else a rebuild from the
        catalog's vectors (never an empty index), saved when no writer is at work and the
        disk takes it; reading never needs to write."""
        wanted, path = self.wanted(), self.folder / SNAPSHOT
        index = load_current(path, wanted, self.catalog)
        if index is not None:
            self.current, self.state, self._on_disk = index, "loaded", index.generation
            return
        self.current, self.state = rebuild(self.catalog, wanted), "rebuilt"
        try:
            with exclusive(self.folder, wait=False):
                for stale in self.folder.glob(f".{SNAPSHOT}.*.tmp"):
                    stale.unlink(missing_ok=True)  # left by a write that was killed before its rename
                self.current.save(path)
                self._on_disk = self.current.generation
        except IndexBusy:
            pass  # the writer at work saves its own when it is done
        except OSError as exc:
            log.warning("the rebuilt vector index is kept in memory only: it could not be saved (%s)",
                        exc.strerror or exc)

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Its collection's turn as the one writer (the lock held). What a writer killed before
        it published left is published first, and a snapshot that covers it saved for readers
        to load; what is written meanwhile is published by `save`, or as the turn ends however
        it ends (a catalog that refuses then, a full disk, leaves it to the next writer)."""
        left = self.catalog.publish()
        self.writing = True
        try:
            self.refresh()
            if left:
                self.save()
            yield
        except BaseException:
            with suppress(CatalogError):
                self._publish()
            raise
        else:
            self._publish()
        finally:
            self.writing = False

    @contextmanager
    def changing(self) -> Iterator[MemoryIndex | None]:
        """`current`, changed in place beside a catalog write. A writer at work publishes
        later; a write outside `writer` is published at once, and an index that covered the
        catalog before covers it after."""
        vectors = self.current
        covered = not self.writing and vectors is not None and vectors.generation == self.catalog.published
        yield vectors
        if covered:
            vectors.generation = self.catalog.published

    def remove(self, ids: list[int]) -> None:
        """Drop images from the catalog and the index: at once, or, for a writer at work, from
        the catalog as it publishes."""
        with self.changing() as vectors:
            if self.writing:
                self._removed += ids
            else:
                self.catalog.remove(ids)
            if vectors is not None:
                vectors.remove(np.array(ids, dtype=np.int64))

    def save(self) -> None:
        """Publish what its writer committed (readers see all of it from here), then write the
        snapshot, tagged with the published generation, which it covers. An index of the
        wrong kind, or a compressed one that outgrew its training sample, is rebuilt first."""
        self._publish()
        if self.current is None:
            return
        wanted, published = self.wanted(), self.catalog.published
        if not wanted.fits(self.current):
            self.current = rebuild(self.catalog, wanted)
        elif self._on_disk == published == self.current.generation and (self.folder / SNAPSHOT).exists():
            return  # nothing was published since it was read or written (a pass over unchanged files)
        self.current.generation = published
        self.current.save(self.folder / SNAPSHOT)
        self._on_disk = published

    def refresh(self, *, background: bool = False) -> bool:
        """Bring the index in step with what another writer published (an index job, or
        another process): a reader sees none of a writer's work before it publishes, and
        while a writer holds the lock the index stays as it is (the writer saves a snapshot
        to load once it is done). `background`: what a request asks; the work, when there is
        any, runs on a thread of its own, and until it is done readers keep the last
        consistent view. Returns whether the index changed (always False in the
        background)."""
        if not self._behind():
            return False
        if background:
            self._refresh_in_background()
            return False
        with self._lock:
            if not self._behind():  # another refresh did it while this one waited
                return False
            wanted = self.wanted()
            loaded = load_current(self.folder / SNAPSHOT, wanted, self.catalog)
            self.current = loaded or rebuild(self.catalog, wanted)  # one assignment: old view or new
            if loaded:
                self._on_disk = loaded.generation
            log.debug("the vector index caught up with the catalog (generation %d, %d images): %s",
                      self.current.generation, len(self.current), "loaded" if loaded else "rebuilt")
            return True

    def close(self) -> None:
        """Wait for a refresh under way: it reads the catalog, which closes next."""
        refresher = self._refresher
        if refresher is not None:
            refresher.join()

    def _behind(self) -> bool:
        """It covers less than the catalog has published, and may be brought up to it now: the
        collection has a model, and no other writer is at work. One query in the common case."""
        generation = self.catalog.published
        current = self.current
        if current is not None and current.generation == generation:
            return False
        return self.wanted() is not None and (self.writing or not held(self.folder))

    def _publish(self) -> None:
        removed, self._removed = self._removed, []
        self.catalog.publish(removed)

    def _refresh_in_background(self) -> None:
        with self._starting:
            if self._refresher is not None and self._refresher.is_alive():
                return  # one at a time; a later request starts the next if still behind
            self._refresher = threading.Thread(target=self._refresh_quietly, name="vector-refresh",
                                               daemon=True)
            self._refresher.start()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception as exc:  # readers keep the view they have; a later request tries again
            log.warning("the vector index could not be brought up to date: %s", describe(exc))
