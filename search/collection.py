"""`Collection`: an index folder, the one object the front ends use for it.

It owns the catalog (the store of record), the vector index (a snapshot derived from the
catalog) and the thumbnails, and keeps them in step: every write goes through it and
reaches all three. Opening brings the vector snapshot up to date with the catalog from
stored vectors, with no model call: a snapshot that is behind, missing or corrupt is
rebuilt and saved again. So is one of another kind than the collection wants (`index_type`):
`auto`, the default, is exact max-sim below `IndexPolicy.compressed_from` images and the
compressed index from there on. `refresh()` brings a reader up to date with what another
writer committed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from .catalog import FILENAME, Catalog, database_url
from .config import IndexType, choices
from .errors import SearchError
from .presets import DEFAULT_PRESET, resolve
from .records import ImageFile, ImageRecord
from .schemas import Stats
from .scoring import Each
from .snapshots import DEFAULT_POLICY, SNAPSHOT, IndexPolicy, Wanted, load_current, rebuild
from .vectors import Candidates, MemoryIndex

THUMBNAILS = "thumbnails"
__all__ = ["SNAPSHOT", "Collection", "CollectionError", "IndexPolicy", "ModelInfo"]


class CollectionError(SearchError):
    """The index folder is missing, or was built with another model."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    queries: int
    dim: int


class Collection:
    def __init__(self, folder: Path, catalog: Catalog, policy: IndexPolicy = DEFAULT_POLICY) -> None:
        self.folder = folder
        self.policy = policy
        self._catalog = catalog
        self._vectors: MemoryIndex | None = None
        self.snapshot_state = "none"  # how the vector index was obtained: loaded / rebuilt / new

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
        if url is None and catalog.is_file() and catalog.stat().st_size == 0 and _holds_an_index(folder):
            raise CollectionError(f"the catalog {catalog} is empty (0 bytes) but the folder holds a vector "
                                  "snapshot or thumbnails: restore catalog.db from a backup, or move the "
                                  "folder away and index again")
        folder.mkdir(parents=True, exist_ok=True)
        collection = cls(folder, Catalog.open(database_url(folder, url)), policy)
        if collection.model is not None:
            collection._sync_vectors()
        return collection

    def close(self) -> None:
        self._catalog.close()

    # -- the model that built it --------------------------------------------------------------

    @property
    def model(self) -> ModelInfo | None:
        meta = self._catalog.meta()
        if "model" not in meta:
            return None
        return ModelInfo(meta["model"], int(meta["queries"]), int(meta["dim"]))

    def bind_model(self, info: ModelInfo) -> None:
        """Record the model on first use; refuse another model on an existing index."""
        if self.model is None:
            self._catalog.set_meta(model=info.name, queries=info.queries, dim=info.dim)
            self._vectors = self._wanted().empty()
            self._vectors.generation = self._catalog.generation
            self.snapshot_state = "new"
        else:
            self.check_model(info.name, (info.queries, info.dim))

    def check_model(self, name: str, shape: tuple[int, int] | None = None) -> None:
        """Refuse a model (and, when given, a vector shape) other than the index's own; an
        index with no model yet takes any."""
        current = self.model
        if current is None or (current.name == name and shape in (None, (current.queries, current.dim))):
            return
        raise CollectionError(
            f"the index at {self.folder} was built with model {current.name} "
            f"({current.queries}x{current.dim} vectors), not {name}; use that model, or another --index"
        )

    def model_to_load(self, requested: str | None) -> str:
        """`requested` (a flag), else the model that built the index, else the default preset;
        a model other than the index's is refused before anything loads."""
        if requested is None:
            current = self.model
            return current.name if current else DEFAULT_PRESET
        self.check_model(resolve(requested).name)
        return requested

    # -- the vector index's kind --------------------------------------------------------------

    @property
    def index_type(self) -> str:
        return self._catalog.meta().get("index_type", "auto")

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
        return Stats(
            images=counts["images"], vectors=vectors.ntotal if vectors else 0, failed=counts["failed"],
            model=model.name if model else None, queries_per_image=model.queries if model else None,
            dim=model.dim if model else None, index=str(self.folder), generation=self._catalog.generation,
            index_type=self.index_type, vector_index=vectors.kind if vectors else None,
        )

    def image(self, image_id: int) -> ImageRecord | None:
        return self._catalog.get(image_id)

    def images(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        return self._catalog.get_many(ids)

    def image_at(self, path: str) -> ImageRecord | None:
        return self._catalog.record_for_path(path)

    def images_under(self, root: str) -> dict[str, ImageRecord]:
        """Rows whose path lies under the folder `root`, by path."""
        return self._catalog.records_under(root)

    def images_with_hash(self, content_hash: str) -> list[ImageRecord]:
        """Readable images with this content."""
        return self._catalog.records_with_hash(content_hash)

    def filter_ids(self, *, path_prefix: str | None = None, after: datetime | None = None,
                   before: datetime | None = None) -> np.ndarray:
        """Ids of readable images under `path_prefix` whose date (EXIF, else mtime) is in range."""
        return self._catalog.filter_ids(path_prefix=path_prefix, after=after, before=before)

    def caption_search(self, query: str, limit: int) -> list[int]:
        return self._catalog.caption_search(query, limit)

    def candidates(self, text_vecs: np.ndarray, k: int,
                   allowed: np.ndarray | None = None) -> list[Candidates]:
        """The vector index's first stage for each (D,) text vector; none before anything is indexed."""
        vectors = self._vectors
        return [] if vectors is None else vectors.search(text_vecs, k, allowed)

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

    @property
    def indexed(self) -> int:
        """Images the vector index holds."""
        return len(self._vectors) if self._vectors is not None else 0

    def file_for(self, record: ImageRecord) -> Path | None:
        """The file behind a catalog row, only if it still resolves inside its indexed root
        (a file replaced by a symlink pointing elsewhere is refused)."""
        path, root = os.path.realpath(record.path), os.path.realpath(record.root)
        if os.path.commonpath([path, root]) != root or not os.path.isfile(path):
            return None
        return Path(path)

    def thumbnail_path(self, content_hash: str) -> Path:
        return self.folder / THUMBNAILS / content_hash[:2] / f"{content_hash}.webp"

    # -- writing: the catalog, the vector index and the thumbnails in step -------------------

    def commit(self, files: list[ImageFile]) -> list[int]:
        """Write a batch of files in one transaction (the batch is in, or not at all), their
        thumbnails first (every committed image has one), then bring the vector index in step:
        a file that became unreadable loses its old vectors. Returns each file's id."""
        for file in files:
            if file.vectors is not None and file.thumbnail is not None:
                self._write_thumbnail(file.content_hash, file.thumbnail)
        ids = np.array(self._catalog.write(files), dtype=np.int64)
        readable = np.array([file.vectors is not None for file in files], dtype=bool)
        self._vectors.remove(ids[~readable])
        if readable.any():
            self._vectors.add(ids[readable], np.stack([f.vectors for f in files if f.vectors is not None]))
        return ids.tolist()

    def copy(self, twin: ImageRecord, file: ImageFile) -> int:
        """A new path holding the content of the indexed `twin`: its results, no model call."""
        model = self.model
        vectors = self._catalog.vectors(twin.id, (model.queries, model.dim))
        copied = replace(file, content_hash=twin.content_hash, width=twin.width, height=twin.height,
                         taken_at=twin.taken_at, caption=twin.caption, vectors=vectors)
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

    def save(self) -> None:
        """Write the vector snapshot, tagged with the catalog generation it covers. An index of
        the wrong kind, or a compressed one that outgrew its training sample, is rebuilt first."""
        if self._vectors is None:
            return
        if not self._wanted().fits(self._vectors):
            self._vectors = rebuild(self._catalog, self._wanted())
        self._vectors.generation = self._catalog.generation
        self._vectors.save(self.folder / SNAPSHOT)

    def refresh(self) -> bool:
        """Bring the vector index in step with what another writer committed (an index job, or
        another process): the snapshot when it covers the catalog, else a rebuild in memory.
        Returns whether anything changed."""
        generation = self._catalog.generation
        if self.model is None or (self._vectors is not None and self._vectors.generation == generation):
            return False
        wanted = self._wanted()
        index = load_current(self.folder / SNAPSHOT, wanted, generation) or rebuild(self._catalog, wanted)
        self._vectors = index  # one assignment: a reader sees the old index or the new one
        return True

    # -- internals ----------------------------------------------------------------------------

    def _write_thumbnail(self, content_hash: str, data: bytes) -> None:
        path = self.thumbnail_path(content_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _sync_vectors(self) -> None:
        """On open: the snapshot when it covers the catalog, else a rebuild, saved."""
        for stale in self.folder.glob(f".{SNAPSHOT}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a write that was killed before its rename
        wanted, path = self._wanted(), self.folder / SNAPSHOT
        index = load_current(path, wanted, self._catalog.generation)
        if index is not None:
            self._vectors, self.snapshot_state = index, "loaded"
            return
        # rebuilt from the catalog's vectors, never replaced by an empty index
        self._vectors, self.snapshot_state = rebuild(self._catalog, wanted), "rebuilt"
        self._vectors.save(path)

    def _wanted(self) -> Wanted:
        model = self.model
        return Wanted(model.queries, model.dim, self.index_type, self.policy)


def _holds_an_index(folder: Path) -> bool:
    """A vector snapshot or thumbnails: what a catalog that was emptied leaves behind."""
    return (folder / SNAPSHOT).exists() or any((folder / THUMBNAILS).glob("*/*.webp"))
