"""`blip2-search browse`: every indexed image, a page at a time, as `GET /api/images` gives them."""

from __future__ import annotations

import argparse

from search.config import Order, choices

from .common import open_collection, settings_from
from .output import emit


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    browse = sub.add_parser("browse", parents=parents, help="list the indexed images, newest first")
    browse.add_argument("--sort", choices=choices(Order), default="newest",
                        help="by date (EXIF, else modified) or by path (default newest)")
    browse.add_argument("--offset", type=int, default=0, help="skip this many images (paging)")
    browse.add_argument("--limit", type=int, default=50, help="images listed (default 50)")
    browse.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.errors import InputError

    if args.offset < 0 or args.limit < 1:
        raise InputError("--offset must be at least 0 and --limit at least 1")
    collection = open_collection(settings_from(args))
    try:
        page = collection.browse(args.offset, args.limit, args.sort)
    finally:
        collection.close()
    total = page.total
    lines = [f"[{info.id}] {(info.taken_at or info.indexed_at)[:19]}  {info.path}  {info.caption or ''}"
             .rstrip() for info in page.images]
    emit(args, page, lines + [f"{len(page.images)} of {total} images from {args.offset + 1}"
                              if page.images else f"no images at offset {args.offset} of {total}"])
    return 0
