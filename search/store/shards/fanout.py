"""A collection's vector index when its vectors live in shards: every question goes to every
shard, and the answers merge into the one-machine answer.

`Shards` is how a question reaches the shards: `LocalShards` asks engines in this process
(tests, and a one-machine reference); `api.ray` asks Ray Serve deployments, each call with a
deadline. A shard that does not answer in time is left out of the merge and named in the
request's `gaps`, so a response can say it is partial instead of hanging or failing.

`ShardedIndex` stands where a collection's `SyncedIndex` stands (`Collection.open(...,
vectors=...)`): it covers the catalog generation the set of shards was written at, so the
catalog's reads follow that generation, and it follows a new set when the manifest names
one. It is read-only: a collection is indexed on one machine and split again
(`blip2-search shard`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Protocol

import numpy as np

from ...errors import CollectionError, SearchError
from ..vectors import Candidates
from .engine import FaissShard, Found, top
from .layout import Manifest, read_manifest

READ_ONLY = ("this server reads a sharded collection: index on one machine, then split it again with "
             "`blip2-search shard`")
_missing: ContextVar[set[int] | None] = ContextVar("missing_shards", default=None)


class ShardUnavailable(SearchError):
    """A shard did not answer in time (every replica down, or slower than the deadline)."""


@contextmanager
def gaps() -> Iterator[set[int]]:
    """The numbers of the shards that the questions asked in this block went without."""
    token = _missing.set(set())
    try:
        yield _missing.get()
    finally:
        _missing.reset(token)


def record_missing(numbers) -> None:
    found = _missing.get()
    if found is not None:
        found.update(numbers)


class Shards(Protocol):
    count: int

    def ask(self, method: str, *args) -> dict[int, object]:
        """Every shard's answer to `method(*args)` (`ShardEngine`), by shard number; the
        shards that did not answer are left out and recorded (`record_missing`)."""


class LocalShards:
    """Every shard an engine in this process."""

    def __init__(self, root: Path) -> None:
        manifest = read_manifest(root)
        self.count = manifest.count
        self.engines = [FaissShard(root, number) for number in range(manifest.count)]

    def ask(self, method: str, *args) -> dict[int, object]:
        return {number: getattr(engine, method)(*args) for number, engine in enumerate(self.engines)}


class ShardedIndex:
    """The vector index of a collection whose vectors are in shards (read-only)."""

    kind = "sharded"
    exact = None  # no vectors here to score every image from: `similar` asks the shards
    writing = False

    def __init__(self, root: Path, shards: Shards) -> None:
        self.root, self.shards = Path(root), shards
        self.manifest: Manifest | None = None
        self.state = "none"

    # -- what `Collection` asks of its vector index ---------------------------------------

    @property
    def current(self) -> ShardedIndex | None:
        return self if self.manifest is not None else None

    @property
    def generation(self) -> int | None:
        return None if self.manifest is None else self.manifest.generation

    def open(self) -> None:
        self.manifest, self.state = read_manifest(self.root), "sharded"

    def refresh(self, *, background: bool = False) -> bool:
        """Follow a new set of shards (its manifest; the shards load it themselves)."""
        manifest = read_manifest(self.root)
        changed, self.manifest = manifest != self.manifest, manifest
        return changed

    def close(self) -> None:
        pass

    def start(self, wanted) -> None:
        raise CollectionError(READ_ONLY)

    @contextmanager
    def writer(self) -> Iterator[None]:
        raise CollectionError(READ_ONLY)
        yield  # pragma: no cover

    changing = writer

    def remove(self, ids) -> None:
        raise CollectionError(READ_ONLY)

    def save(self) -> None:
        raise CollectionError(READ_ONLY)

    # -- a vector index --------------------------------------------------------------------

    @property
    def queries(self) -> int:
        return self.manifest.queries

    @property
    def ntotal(self) -> int:
        return len(self) * self.manifest.queries

    def __len__(self) -> int:
        return sum(self.manifest.images) if self.manifest else 0

    def search(self, text_vecs: np.ndarray, k: int, allowed: np.ndarray | None = None,
               depth: int | None = None) -> list[Candidates]:
        """For each (D,) text vector its top k images, exact: every shard's top k, merged."""
        text_vecs = np.atleast_2d(np.asarray(text_vecs, dtype=np.float32))
        answers = self.shards.ask("text", text_vecs, k, allowed)
        return [Candidates(*_merge([found[i] for found in answers.values()], k))
                for i in range(len(text_vecs))]

    def similar(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
                depth: int | None = None) -> list[tuple[int, float]]:
        """The top k images like the (Q', D) query: every shard's top k, merged (exact shards
        score every image; compressed ones, the `depth` each query vector proposes)."""
        ids, scores = _merge(list(self.shards.ask("similar", query, k, allowed, depth).values()), k)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]


def _merge(found: list[Found], k: int) -> Found:
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return top(np.concatenate([ids for ids, _ in found]), np.concatenate([s for _, s in found]), k)
