"""`blip2-search watch PATH...`: index the folders, then follow their changes until Ctrl-C,
one line on stderr for each pass and each pause (indexer.watching); with --json, each pass's
summary as a line of JSON on stdout."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from search.errors import InputError

from .common import load_engine, open_collection, settings_from
from .output import emit, warn


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    watch = sub.add_parser("watch", parents=parents, help="index folders, then follow their changes")
    watch.add_argument("paths", nargs="+", metavar="PATH")
    add_watch_flags(watch)
    watch.add_argument("--no-captions", action="store_true", help="skip captions (faster)")
    watch.add_argument("--no-ocr", action="store_true", help="do not read the text written in images")
    watch.add_argument("--workers", type=int, help="image-decoding processes (default 2)")
    watch.add_argument("--exclude", action="append", metavar="GLOB",
                       help="skip matching files and folders, never followed (repeatable)")
    watch.set_defaults(run=run)


def add_watch_flags(parser: argparse.ArgumentParser) -> None:
    """How roots are followed (`watch`, and `serve --watch`)."""
    parser.add_argument("--poll", action="store_true",
                        help="poll every root on a schedule instead of file-system events (network "
                             "filesystems are polled anyway)")
    parser.add_argument("--interval", type=float, default=10.0, metavar="S",
                        help="seconds between polls, and between tries of a paused root (default 10)")
    parser.add_argument("--settle", type=float, default=2.0, metavar="S",
                        help="seconds a changed file's size and mtime must hold still before it is "
                             "indexed (default 2)")
    parser.add_argument("--reconcile", type=float, default=60.0, metavar="MINUTES",
                        help="minutes between full passes that catch what the events missed; unchanged "
                             "files cost no model call (default 60)")
    add_removal_flag(parser)


def add_removal_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-removals", type=float, default=0.10, metavar="SHARE",
                        help="the share of a root's images one pass may remove (default 0.1); past it, or "
                             "with the root's marker missing, nothing is removed and the root pauses; "
                             "1 removes whatever vanished")


def watch_options(args: argparse.Namespace, ignore: tuple[Path, ...] = ()):
    from indexer.watching import WatchOptions

    for name in ("interval", "settle", "reconcile"):
        if getattr(args, name) <= 0:
            raise InputError(f"--{name} takes a number above 0")
    if args.max_removals < 0:
        raise InputError("--max-removals takes a share from 0 to 1")
    return WatchOptions(poll=args.poll, interval=args.interval, settle=args.settle,
                        debounce_ms=int(min(1.0, args.settle / 2) * 1000), reconcile=args.reconcile * 60,
                        exclude=tuple(getattr(args, "exclude", None) or ()), ignore=ignore)


def folders(paths: list[str]) -> list[Path]:
    """The roots to watch; one that is not a folder is refused before anything starts."""
    roots = [Path(p).expanduser().resolve() for p in paths]
    for root in roots:
        if not root.is_dir():
            raise InputError(f"{root} is not a folder; nothing is watched")
    return roots


def run(args: argparse.Namespace) -> int:
    from indexer.pipeline import IndexOptions, index_paths
    from indexer.watching import Watcher
    from search.media import ocr

    settings = settings_from(args)
    if not args.no_ocr:
        ocr.check()
    roots = folders(args.paths)
    options = watch_options(args, ignore=(Path(settings.index).expanduser().resolve(),))
    collection = open_collection(settings, create=True)
    try:
        engine = load_engine(settings, collection.model_to_load(settings.model))
        index = IndexOptions(captions=not args.no_captions, ocr=not args.no_ocr,
                             batch_size=settings.batch_size, max_memory=settings.memory_budget,
                             workers=settings.workers, exclude=options.exclude,
                             max_removals=args.max_removals)
        def run_pass(folders: list[Path]):
            summary = index_paths(collection, engine, folders, index, notify=warn)
            if args.json:  # one line a pass: the folders walked and the `index` summary
                emit(args, {"folders": [str(f) for f in folders], **summary.model_dump(mode="json")}, [])
            return summary

        watcher = Watcher(roots, run_pass, options, notify=warn)
        stop = threading.Event()
        warn(f"watching {', '.join(str(root) for root in watcher.roots)}; Ctrl-C stops")
        try:
            watcher.run(stop)
        except KeyboardInterrupt:  # the way a watch ends: each committed batch stays
            stop.set()
    finally:
        collection.close()
    return 0
