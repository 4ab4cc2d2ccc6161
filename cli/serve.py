"""`blip2-search serve`: the HTTP API and the web page under uvicorn (`api.serving`), built
from the settings (flags over the environment) and handed to the server as an app object."""

from __future__ import annotations

import argparse

from .common import settings_from
from .watch import add_watch_flags, folders, watch_options


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", parents=parents, help="the HTTP API and web page")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1; beyond loopback, "
                                      "indexing needs BLIP2_SEARCH_API_KEY)")
    serve.add_argument("--port", type=int, help="default 8000")
    serve.add_argument("--workers", type=int, help="image-decoding processes for index jobs (default 2)")
    serve.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="serve on Ray Serve over the index split into shards: the cluster at ADDRESS "
                            "(auto: this machine's), else a local instance")
    serve.add_argument("--shards", type=int, default=2, help="with --ray: shards to split the index into")
    serve.add_argument("--replicas", type=int, default=2, help="with --ray: replicas of each shard")
    serve.add_argument("--watch", nargs="+", metavar="PATH",
                       help="index these folders, then follow their changes (as `watch`), each pass an "
                            "index job of the server's")
    serve.add_argument("--exclude", action="append", metavar="GLOB",
                       help="with --watch: skip matching files and folders (repeatable)")
    add_watch_flags(serve)
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.ray is not None:
        return _on_ray(args, settings)
    from api.app import create_app
    from api.serving import serve

    serve(create_app(settings, **_watching(args, settings)), settings)
    return 0


def _watching(args: argparse.Namespace, settings) -> dict:
    """`create_app`'s start-up with the watcher, under --watch."""
    if not args.watch:
        return {}
    from functools import partial
    from pathlib import Path

    from api import state
    from api.watching import WatchSetup

    roots = tuple(folders(args.watch))
    setup = WatchSetup(roots=roots, options=watch_options(args, ignore=(Path(settings.index).resolve(),)),
                       max_removals=args.max_removals)
    return {"start": partial(state.start, watch=setup)}


def _on_ray(args: argparse.Namespace, settings) -> int:
    import threading

    from api.ray import launch
    from search.errors import InputError

    from .output import warn

    if args.shards < 1 or args.replicas < 1:
        raise InputError("--shards and --replicas take a number of 1 or more")
    launch.connect(args.ray or None)
    launch.deploy(settings, shards=args.shards, replicas=args.replicas)
    warn(f"serving on Ray: http://{settings.host}:{settings.port}/ ({args.shards} shards, "
         f"{args.replicas} replicas each); Ctrl-C stops")
    threading.Event().wait()
    return 0
