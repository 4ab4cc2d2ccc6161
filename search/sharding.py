"""Splitting a collection's vectors into shards (`store.shards`): `blip2-search shard`, and
`index --shards` after an index run."""

from __future__ import annotations

from pathlib import Path

from .collection import Collection
from .errors import CollectionError
from .store.shards import Manifest, write_shards

SHARDS = "shards"  # the folder under an index that holds its shards, unless told another


def split(collection: Collection, count: int, root: Path | None = None, kind: str | None = None) -> Manifest:
    """Write `collection`'s vectors as `count` shards under `root` (default: the index's
    `shards` folder), each with an index of `kind` (default: the collection's own)."""
    model = collection.model
    if model is None or not collection.indexed:
        raise CollectionError(f"the index at {collection.folder} holds no vectors to split yet")
    stats = collection.stats()
    return write_shards(root or collection.folder / SHARDS, count, collection.iter_vectors(),
                        queries=model.queries, dim=model.dim, kind=kind or stats.vector_index,
                        generation=collection.generation, model=model.name)
