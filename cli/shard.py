"""`blip2-search shard N`: split the index's vectors into N shards for `serve --ray`
(`search.sharding`); a server's shards load the new set within a second."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import open_collection, settings_from
from .output import emit


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    shard = sub.add_parser("shard", parents=parents, help="split the vectors into shards for serve --ray")
    shard.add_argument("count", type=int, metavar="N", help="shards (an image goes to shard id %% N)")
    shard.add_argument("--out", type=Path, help="the shards' folder (default: INDEX/shards)")
    shard.add_argument("--kind", choices=("exact", "compressed"),
                       help="each shard's vector index (default: the index's own)")
    shard.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    collection = open_collection(settings_from(args))
    try:
        manifest = split_into(collection, args.count, args.out, args.kind)
    finally:
        collection.close()
    emit(args, {"shards": manifest.count, "images": list(manifest.images), "kind": manifest.kind,
                "generation": manifest.generation, "folder": manifest.folder},
         [f"{manifest.count} shards ({manifest.kind}) of {', '.join(map(str, manifest.images))} images, "
          f"generation {manifest.generation}"])
    return 0


def split_into(collection, count: int, out: Path | None = None, kind: str | None = None):
    from search.errors import InputError
    from search.sharding import split

    if count < 1:
        raise InputError("a collection needs at least one shard")
    return split(collection, count, out.expanduser().resolve() if out else None, kind)
