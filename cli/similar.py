"""`blip2-search similar (IMAGE_PATH | --id ID)`: images ranked by their similarity to one."""

from __future__ import annotations

import argparse
from pathlib import Path

from search.errors import InputError

from .common import searcher
from .output import emit, hit_lines


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    similar = sub.add_parser("similar", parents=parents, help="images similar to an image")
    similar.add_argument("image", nargs="?", metavar="IMAGE_PATH")
    similar.add_argument("--id", type=int, help="an indexed image's id instead of a path")
    similar.add_argument("--at", type=float, metavar="SECONDS",
                         help="with --id of a video: its moment shown then")
    similar.add_argument("-k", type=int, default=10)
    similar.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.schemas import SearchResults

    if (args.image is None) == (args.id is None):
        raise InputError("give an image path or --id, not both")
    if args.at is not None and args.id is None:
        raise InputError("--at needs --id (a video's id)")
    with searcher(args) as found:
        if args.id is not None:
            hits, query = found.similar.find(image_id=args.id, at=args.at, k=args.k), args.id
        else:
            hits = found.similar.to_file(str(Path(args.image).expanduser().resolve()), k=args.k)
            query = args.image
    emit(args, SearchResults(query=query, results=hits), hit_lines(hits))
    return 0
