"""One function per CLI command: parse nothing, call the library, print the result."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence

from search.config import Settings, load_settings
from search.errors import ImageError

from .output import emit, progress, warn


def batched(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        index=getattr(args, "index", None),
        model=getattr(args, "model", None),
        device=getattr(args, "device", None),
        dtype=getattr(args, "dtype", None),
        batch_size=getattr(args, "batch_size", None),
    )


def caption(args: argparse.Namespace) -> int:
    """Caption image files with the generation model; unreadable files are reported, not fatal."""
    settings = _settings(args)
    from search.images import open_image
    from search.models import Blip2Engine

    engine = Blip2Engine.load(settings.model, device=settings.device, dtype=settings.dtype)
    results: list[dict] = []
    errors: list[dict] = []
    chunks = batched(args.paths, settings.batch_size)
    for chunk in progress(chunks, total=len(args.paths), unit="image", args=args):
        opened = []
        for path in chunk:
            try:
                opened.append((path, open_image(path)))
            except ImageError as exc:
                errors.append({"path": path, "error": str(exc)})
        if opened:
            captions = engine.caption([image for _, image in opened], prompt=args.prompt)
            for (path, _), text in zip(opened, captions, strict=True):
                results.append({"path": path, "caption": text})
    emit(args, {"results": results, "errors": errors}, [f"{r['path']}: {r['caption']}" for r in results])
    if not args.json:
        for error in errors:
            warn(f"{error['path']}: error: {error['error']}")
    return 1 if errors else 0


def demo(args: argparse.Namespace) -> int:
    """Sample images, the demo model and a tour; resolving the preset says what is missing."""
    from search.presets import resolve

    resolve("demo")
    return 0
