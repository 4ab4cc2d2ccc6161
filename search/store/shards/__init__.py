"""A collection's vectors split by image into shards, each answering for its own images.

`layout`: the folder a set of shards is written to (a manifest and a folder a shard) and
`write_shards`, which splits an index's vectors into it. `engine`: what one shard is
(`ShardEngine`) and its FAISS implementation (`FaissShard`). `fanout`: `ShardedIndex`, the
vector index of a collection whose vectors live in shards, which asks every shard through a
`Shards` caller (in this process, or Ray Serve deployments: `api.ray`) and merges their
answers, and `gaps`, which records the shards a request went without.

Every shard answers with exact scores for its own top k, so the merge of their answers is
the one-machine answer.
"""

from .engine import FaissShard, ShardEngine
from .fanout import LocalShards, ShardedIndex, Shards, ShardUnavailable, gaps
from .layout import MANIFEST, Manifest, read_manifest, write_shards

__all__ = ["MANIFEST", "FaissShard", "LocalShards", "Manifest", "ShardEngine", "ShardUnavailable",
           "ShardedIndex", "Shards", "gaps", "read_manifest", "write_shards"]
