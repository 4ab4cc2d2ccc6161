"""`blip2-search index PATH...`: new and changed files are embedded and captioned; moved files
keep theirs. With `--ray`, the embedding runs on a Ray cluster (indexer.ray)."""

from __future__ import annotations

import argparse
from pathlib import Path

from search.config import IndexType, Settings, choices
from search.errors import InputError

from .common import load_engine, open_collection, settings_from
from .output import emit, progress_bar, warn
from .watch import add_removal_flag


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    index = sub.add_parser("index", parents=parents, help="index folders of images")
    index.add_argument("paths", nargs="+", metavar="PATH")
    index.add_argument("--no-captions", action="store_true", help="skip captions (faster)")
    index.add_argument("--no-ocr", action="store_true",
                       help="do not read the text written in images (about 0.3 s an image on 2 cores); "
                            "a later run without it reads the text of the images indexed before")
    index.add_argument("--workers", type=int, help="image-decoding processes (default 2)")
    index.add_argument("--max-memory", type=float, metavar="GB",
                       help="memory the run may hold; its batches are sized to it (default: the smaller "
                            "of 8 GB and half the machine's)")
    index.add_argument("--exclude", action="append", metavar="GLOB", help="skip matching files (repeatable)")
    index.add_argument("--index-type", choices=choices(IndexType),
                       help="vector index kind, kept for later runs (default auto: exact below "
                            "20,000 images, compressed from there); a change rebuilds with no model call")
    index.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="embed on Ray: a cluster's address, or none to start a local Ray instance "
                            "(needs the [distributed] extra; put it after the paths, or write --ray=ADDRESS)")
    index.add_argument("--shard-size", type=int, metavar="N",
                       help="with --ray: files a Parquet shard holds (default 256)")
    index.add_argument("--keep-features", action="store_true",
                       help="keep each image's encoder output (about 365 KB an image at ViT-g), so a "
                            "rerank or --min-match runs only the Q-Former and `ask` skips the image "
                            "encoder; remembered by the index, and images indexed before gain it")
    index.add_argument("--shards", type=int, metavar="N",
                       help="then split the vectors into N shards for serve --ray (as `shard N`)")
    index.add_argument("--no-wait", action="store_true",
                       help="when another writer holds the index, exit 1 saying who, instead of waiting")
    add_removal_flag(index)
    index.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.media import ocr

    settings = settings_from(args)
    if not args.no_ocr:
        ocr.check()  # a missing reader stops the run before the index folder is even made
    if args.shards is not None and args.shards < 1:
        raise InputError("--shards must be at least 1")
    collection = open_collection(settings, create=True)
    try:
        summary = (_here if args.ray is None else _on_ray)(args, settings, collection)
        if args.shards:
            from .shard import split_into

            split_into(collection, args.shards)
    finally:
        collection.close()
    counts = ", ".join(f"{key} {getattr(summary, key)}" for key in
                       ("added", "updated", "moved", "removed", "unchanged", "failed"))
    shards = summary.shards
    where = f"; shards computed {shards.computed}, reused {shards.reused}" if shards else ""
    kept = f"; features stored for {summary.features}" if summary.features else ""
    read = f"; text read in {summary.text}" if summary.text else ""
    emit(args, summary, [f"indexed: {counts}; model calls {summary.model_calls}{where}{kept}{read}"])
    if not args.json:
        for error in summary.errors:
            warn(f"{error.path}: failed: {error.error}")
        for held in summary.paused:
            warn(f"{held.root}: paused, nothing removed: {held.reason}")
    return 0


def _options(args: argparse.Namespace, settings: Settings):
    from indexer.pipeline import IndexOptions

    return IndexOptions(captions=not args.no_captions, ocr=not args.no_ocr, batch_size=settings.batch_size,
                        max_memory=settings.memory_budget, workers=settings.workers,
                        exclude=tuple(args.exclude or ()), index_type=args.index_type, wait=not args.no_wait,
                        keep_features=args.keep_features, max_removals=args.max_removals)


def _here(args: argparse.Namespace, settings: Settings, collection):
    from indexer.pipeline import index_paths

    engine = load_engine(settings, collection.model_to_load(settings.model))
    return index_paths(collection, engine, [Path(p) for p in args.paths], _options(args, settings),
                       progress=lambda total: progress_bar(total, "image", args), notify=warn)


def _on_ray(args: argparse.Namespace, settings: Settings, collection):
    from indexer.ray.driver import SHARD_SIZE, RayOptions, index_on_ray

    if args.ray and Path(args.ray).exists():
        raise InputError(f"--ray took {args.ray} for the cluster address: put --ray after the paths, "
                         "or write --ray=ADDRESS")
    if args.keep_features:
        raise InputError("--keep-features runs on this machine, not on Ray: index with --ray first, then "
                         "run `index --keep-features` without it (only the image encoder runs again)")
    if args.shard_size is not None and args.shard_size < 1:
        raise InputError("--shard-size must be at least 1")
    model = collection.model_to_load(settings.model)  # checked here, loaded by each Ray worker
    ray = RayOptions(address=args.ray or None, shard_size=args.shard_size or SHARD_SIZE,
                     device=settings.device, precision=settings.precision)
    return index_on_ray(collection, model, [Path(p) for p in args.paths],
                        options=_options(args, settings), ray=ray, notify=warn,
                        progress=lambda total: progress_bar(total, "image", args))
