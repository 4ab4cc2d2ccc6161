"""`blip2-search ocr IMAGE_PATH...`: prints the text written in files (RapidOCR); no index or
BLIP-2 model needed. Unreadable files are reported and the rest are still read (exit 1 if
any failed)."""

from __future__ import annotations

import argparse

from .output import emit, progress, warn


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    ocr = sub.add_parser("ocr", parents=parents, help="print the text written in image files (no index)")
    ocr.add_argument("paths", nargs="+", metavar="IMAGE_PATH")
    ocr.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.errors import ImageError
    from search.media.ocr import reader
    from search.schemas import FileError, Reading, Readings

    found = Readings(results=[], errors=[])
    text_reader = reader()
    for path in progress(args.paths, total=len(args.paths), unit="image", args=args):
        try:
            found.results.append(Reading(path=path, text=text_reader.read_path(path)))
        except ImageError as exc:
            found.errors.append(FileError(path=path, error=str(exc)))
    lines = [f"{r.path}: {r.text.replace(chr(10), ' / ') or '(no text)'}" for r in found.results]
    emit(args, found, lines)
    if not args.json:
        for error in found.errors:
            warn(f"{error.path}: error: {error.error}")
    return 1 if found.errors else 0
