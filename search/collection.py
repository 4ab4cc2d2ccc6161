"""`Collection`: an index folder — the catalog (store of record), the vector snapshot, thumbnails.

Opening brings the vector snapshot up to date with the catalog from stored vectors, with no
model call: a snapshot that is behind, missing or corrupt is rebuilt and saved again. So is
one of another kind than the collection wants (`index_type`): `auto`, the default, is exact
max-sim below COMPRESSED_FROM images and the compressed index from there on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .catalog import Catalog, database_url
from .errors import SearchError
from .vectors import KINDS, SnapshotError, VectorIndex

SNAPSHOT = "vectors.faiss"
COMPRESSED_FROM = 20_000  # images; where `auto` switches from exact to compressed
TRAINING_SAMPLE = 8_192  # images whose vectors train a compressed index's quantiser
INDEX_TYPES = ("auto", *KINDS)
THUMBNAILS = "thumbnails"


class CollectionError(SearchError):
    """The index folder is missing, or was built with another model."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    queries: int
    dim: int


class Collection:
    def __init__(self, folder: Path, catalog: Catalog) -> None:
        self.folder = folder
        self.catalog = catalog
        self.vectors: VectorIndex | None = None
        self.snapshot_state = "none"  # how the vector index was obtained: loaded / rebuilt / new

    @classmethod
    def open(cls, folder: Path, *, create: bool = False, url: str | None = None) -> Collection:
        """Open an index folder; `create` makes it when missing (the `index` command)."""
        folder = Path(folder).expanduser().resolve()
        url = url or os.environ.get("BLIP2_SEARCH_DATABASE_URL")
        if not create and url is None and not (folder / "catalog.db").exists():
            hint = "run `blip2-search index PATH` first, or pass --index"
            raise CollectionError(f"no index at {folder}: {hint}")
        folder.mkdir(parents=True, exist_ok=True)
        collection = cls(folder, Catalog.open(database_url(folder, url)))
        if collection.model is not None:
            collection._sync_vectors()
        return collection

    def close(self) -> None:
        self.catalog.close()

    @property
    def model(self) -> ModelInfo | None:
        meta = self.catalog.meta()
        if "model" not in meta:
            return None
        return ModelInfo(meta["model"], int(meta["queries"]), int(meta["dim"]))

    def bind_model(self, info: ModelInfo) -> None:
        """Record the model on first use; refuse another model on an existing index."""
        if self.model is None:
            self.catalog.set_meta(model=info.name, queries=info.queries, dim=info.dim)
            self.vectors = self._empty_index(info, images=0)
            self.vectors.generation = self.catalog.generation
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

    def stats(self) -> dict:
        """The `stats` shape of the public contract."""
        counts = self.catalog.stats()
        model = self.model
        return {
            "images": counts["images"], "vectors": self.vectors.ntotal if self.vectors else 0,
            "failed": counts["failed"], "model": model.name if model else None,
            "queries_per_image": model.queries if model else None, "dim": model.dim if model else None,
            "index": str(self.folder), "generation": self.catalog.generation,
            "index_type": self.index_type, "vector_index": self.vectors.kind if self.vectors else None,
        }

    @property
    def index_type(self) -> str:
        return self.catalog.meta().get("index_type", "auto")

    def set_index_type(self, index_type: str) -> None:
        """Choose the vector index kind (auto, exact or compressed); an existing index is
        rebuilt into it from the catalog's vectors, with no model call."""
        if index_type not in INDEX_TYPES:
            raise CollectionError(f"unknown index type {index_type!r}: use one of {', '.join(INDEX_TYPES)}")
        if index_type != self.index_type:
            self.catalog.set_meta(index_type=index_type)
            if self.vectors is not None:
                self.save_vectors()

    def wanted_kind(self, images: int) -> str:
        """The vector index kind for a collection of `images` indexed images."""
        if self.index_type != "auto":
            return self.index_type
        return "compressed" if images >= COMPRESSED_FROM else "exact"

    def save_vectors(self) -> None:
        """Write the snapshot, tagged with the catalog generation it covers. An index of the
        wrong kind, or a compressed one that outgrew its training sample, is rebuilt first."""
        if self.vectors is None:
            return
        if not self._fits(self.vectors):
            self.vectors = self._rebuild(self.model)
        self.vectors.generation = self.catalog.generation
        self.vectors.save(self.folder / SNAPSHOT)

    def iter_vectors(self):
        """Yield (ids, (n, Q, D) vectors) of every indexed image: from memory when the index
        holds them (exact), else from the catalog."""
        if self.vectors is not None and self.vectors.kind == "exact":
            yield from self.vectors.iter_vectors()
        elif self.model is not None:
            yield from self.catalog.iter_vectors((self.model.queries, self.model.dim))

    def file_for(self, record) -> Path | None:
        """The file behind a catalog row, only if it still resolves inside its indexed root
        (a file replaced by a symlink pointing elsewhere is refused)."""
        path, root = os.path.realpath(record.path), os.path.realpath(record.root)
        if os.path.commonpath([path, root]) != root or not os.path.isfile(path):
            return None
        return Path(path)

    def thumbnail_path(self, content_hash: str) -> Path:
        return self.folder / THUMBNAILS / content_hash[:2] / f"{content_hash}.webp"

    def write_thumbnail(self, content_hash: str, data: bytes) -> None:
        path = self.thumbnail_path(content_hash)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def _sync_vectors(self) -> None:
        info = self.model
        path = self.folder / SNAPSHOT
        for stale in self.folder.glob(f".{SNAPSHOT}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a write that was killed before its rename
        generation = self.catalog.generation
        try:
            index = VectorIndex.load(path, info.queries, info.dim, self._fetch)
            if index.generation == generation and self._fits(index):
                self.vectors, self.snapshot_state = index, "loaded"
                return
        except SnapshotError:
            pass  # rebuilt below from the catalog's vectors, never replaced by an empty index
        index = self._rebuild(info)
        index.generation = generation
        self.vectors, self.snapshot_state = index, "rebuilt"
        index.save(path)

    def _fits(self, index: VectorIndex) -> bool:
        """`index`, in step with the catalog, is of the wanted kind and needs no retraining."""
        return index.kind == self.wanted_kind(len(index)) and not index.needs_training

    def _empty_index(self, info: ModelInfo, images: int) -> VectorIndex:
        return VectorIndex(info.queries, info.dim, self.wanted_kind(images), self._fetch)

    def _rebuild(self, info: ModelInfo) -> VectorIndex:
        """A fresh index of the wanted kind from the catalog's vectors; a compressed one is
        trained first on an even sample of them (a second pass)."""
        total = self.catalog.stats()["with_vectors"]
        index = self._empty_index(info, images=total)
        shape = (info.queries, info.dim)
        if index.kind == "compressed":
            stride = max(1, total // TRAINING_SAMPLE)
            # copies: a strided view would keep each whole chunk (1 GB at a million images) alive
            sample = [v[::stride].copy() for _, v in self.catalog.iter_vectors(shape, chunk=stride * 256)]
            if sample:
                index.train(np.concatenate(sample), population=total)
        for ids, vectors in self.catalog.iter_vectors(shape):
            index.add(ids, vectors)
        return index

    def _fetch(self, ids: np.ndarray, each=None) -> tuple[np.ndarray, np.ndarray]:
        info = self.model
        return self.catalog.vectors_many(ids, (info.queries, info.dim), each)
