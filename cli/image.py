"""`blip2-search image ID`: one indexed file's metadata, as `GET /api/images/{id}` gives it."""

from __future__ import annotations

import argparse

from search.errors import NotFound

from .common import open_collection, settings_from
from .output import emit


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    image = sub.add_parser("image", parents=parents, help="one image's metadata, by id")
    image.add_argument("id", type=int)
    image.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.schemas import ImageInfo

    collection = open_collection(settings_from(args))
    try:
        record = collection.catalog.get(args.id)
    finally:
        collection.close()
    if record is None:
        raise NotFound(f"no image with id {args.id}")
    info = ImageInfo.of(record)
    emit(args, info, [f"{key}: {value}" for key, value in info.model_dump().items()])
    return 0
