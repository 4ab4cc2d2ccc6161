"""`blip2-search duplicates [--threshold T]`: groups of indexed images that show the same
picture, each with the one to keep; nothing is deleted or moved."""

from __future__ import annotations

import argparse

from .common import open_collection, settings_from
from .output import emit


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    duplicates = sub.add_parser("duplicates", parents=parents,
                                help="groups of images that are the same picture (nothing is deleted)")
    duplicates.add_argument("--threshold", metavar="T",
                            help="the least similarity of a near copy to the kept image, 0 to 1 "
                                 "(default 0.5, calibrated; higher finds fewer)")
    duplicates.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.query.duplicates import check_threshold, groups

    threshold = check_threshold(_number(args.threshold))
    collection = open_collection(settings_from(args))
    try:
        found = groups(collection, threshold)
    finally:
        collection.close()
    lines = []
    for group in found.groups:
        lines.append(f"keep [{group.keep.id}] {group.keep.path}  ({group.images[0].why})")
        lines += [f"  {image.reason:9} {image.similarity:.3f}  [{image.id}] {image.path}  ({image.why})"
                  for image in group.images[1:]]
    extra = sum(len(group.images) - 1 for group in found.groups)
    count = len(found.groups)
    lines.append(f"{count} group{'s' * (count != 1)}, {extra} images besides the kept ones" if count
                 else "no duplicates")
    emit(args, found, lines)
    return 0


def _number(text: str | None) -> float | None:
    from search.errors import InputError

    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"the threshold must be a number above 0 and at most 1, not {text!r}") from None
