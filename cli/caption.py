"""`blip2-search caption IMAGE_PATH...`: captions files with the generation model; no index
needed. Unreadable files are reported and the rest are still captioned (exit 1 if any failed)."""

from __future__ import annotations

import argparse

from .common import load_engine, settings_from
from .output import emit, progress, warn


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    caption = sub.add_parser("caption", parents=parents, help="caption image files (no index needed)")
    caption.add_argument("paths", nargs="+", metavar="IMAGE_PATH")
    caption.add_argument("--prompt", help="text the caption continues, e.g. 'a photo of'")
    caption.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.errors import ImageError
    from search.media.images import open_image
    from search.presets import DEFAULT_PRESET
    from search.schemas import Caption, Captions, FileError

    settings = settings_from(args)
    engine = load_engine(settings, settings.model or DEFAULT_PRESET)
    found = Captions(results=[], errors=[])
    size = settings.batch_size or engine.batch_size()
    chunks = [args.paths[i : i + size] for i in range(0, len(args.paths), size)]
    for chunk in progress(chunks, total=len(args.paths), unit="image", args=args):
        opened = []
        for path in chunk:
            try:
                opened.append((path, open_image(path)))
            except ImageError as exc:
                found.errors.append(FileError(path=path, error=str(exc)))
        if opened:
            texts = engine.caption([image for _, image in opened], prompt=args.prompt)
            pairs = zip(opened, texts, strict=True)
            found.results += [Caption(path=path, caption=text) for (path, _), text in pairs]
    emit(args, found, [f"{r.path}: {r.caption}" for r in found.results])
    if not args.json:
        for error in found.errors:
            warn(f"{error.path}: error: {error.error}")
    return 1 if found.errors else 0
