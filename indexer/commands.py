"""CLI commands that build things: caption, index, stats, demo. Each calls the library and prints."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

from search.config import Settings, load_settings
from search.errors import ImageError, InputError

from .output import emit, progress, progress_bar, warn


def batched(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def settings_from(args: argparse.Namespace) -> Settings:
    return load_settings(**{
        name: getattr(args, name, None)
        for name in ("index", "model", "device", "dtype", "batch_size", "workers")
    })


def load_engine(settings: Settings, indexed_model: str | None = None):
    """The engine for `settings`; refuses, before loading anything, a model other than the index's."""
    from search.models import Blip2Engine

    model = settings.model_for(indexed_model)
    return Blip2Engine.from_settings(settings, model)


def open_collection(settings: Settings, *, create: bool = False):
    from search.collection import Collection

    return Collection.open(settings.index, create=create, url=settings.database_url)


def caption(args: argparse.Namespace) -> int:
    """Caption image files with the generation model; unreadable files are reported, not fatal."""
    settings = settings_from(args)
    from search.images import open_image

    engine = load_engine(settings)
    results: list[dict] = []
    errors: list[dict] = []
    chunks = batched(args.paths, settings.batch_size or engine.batch_size())
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


def index(args: argparse.Namespace) -> int:
    """Index folders: new and changed files are embedded and captioned; moved files keep theirs.
    With `--ray`, the embedding runs on a Ray cluster (indexer.distributed)."""
    settings = settings_from(args)
    run = _index_here if args.ray is None else _index_on_ray
    collection = open_collection(settings, create=True)
    try:
        indexed = collection.model.name if collection.model else None
        summary = run(args, settings, collection, indexed)
    finally:
        collection.close()
    payload = summary.to_json()
    counts = ", ".join(f"{key} {payload[key]}" for key in
                       ("added", "updated", "moved", "removed", "unchanged", "failed"))
    shards = payload.get("shards")
    where = f"; shards computed {shards['computed']}, reused {shards['reused']}" if shards else ""
    emit(args, payload, [f"indexed: {counts}; model calls {payload['model_calls']}{where}"])
    if not args.json:
        for error in summary.errors:
            warn(f"{error['path']}: failed: {error['error']}")
    return 0


def _index_options(args: argparse.Namespace, settings: Settings):
    from indexer.pipeline import IndexOptions

    return IndexOptions(captions=not args.no_captions, batch_size=settings.batch_size,
                        workers=settings.workers, exclude=tuple(args.exclude or ()))


def _index_here(args: argparse.Namespace, settings: Settings, collection, indexed: str | None):
    from indexer.pipeline import index_paths

    engine = load_engine(settings, indexed)
    if args.index_type:
        collection.set_index_type(args.index_type)
    return index_paths(collection, engine, [Path(p) for p in args.paths], _index_options(args, settings),
                       progress=lambda total: progress_bar(total, "image", args))


def _index_on_ray(args: argparse.Namespace, settings: Settings, collection, indexed: str | None):
    from indexer.distributed import SHARD_SIZE, RayOptions, index_on_ray

    if args.ray and Path(args.ray).exists():
        raise InputError(f"--ray took {args.ray} for the cluster address: put --ray after the paths, "
                         "or write --ray=ADDRESS")
    if args.shard_size is not None and args.shard_size < 1:
        raise InputError("--shard-size must be at least 1")
    model = settings.model_for(indexed)  # checked here, loaded by each Ray worker
    if args.index_type:
        collection.set_index_type(args.index_type)
    ray = RayOptions(address=args.ray or None, shard_size=args.shard_size or SHARD_SIZE,
                     device=settings.device, dtype=settings.dtype)
    return index_on_ray(collection, model, [Path(p) for p in args.paths],
                        options=_index_options(args, settings), ray=ray, notify=None if args.json else warn,
                        progress=lambda total: progress_bar(total, "image", args))


def serve(args: argparse.Namespace) -> int:
    """Run the API under uvicorn. The app reads its settings from BLIP2_SEARCH_* variables, so
    the flags are passed on that way (and this package never imports the api package)."""
    settings = settings_from(args)  # validates the flags first
    import os

    import uvicorn

    for name in ("index", "model", "device", "dtype", "batch_size", "workers"):
        value = getattr(settings, name)
        if value is not None:
            os.environ[f"BLIP2_SEARCH_{name.upper()}"] = str(value)
    uvicorn.run("api.app:app_from_env", factory=True, host=args.host, port=args.port, log_level="warning")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Retrieval recall (first stage and reranked), VQA accuracy and caption quality."""
    settings = settings_from(args)
    from search.evaluation import evaluate as run_eval
    from search.evaluation import load_records

    data = load_records(Path(args.folder), Path(args.records))
    engine = load_engine(settings)
    report = run_eval(engine, data, rerank_top=args.rerank_top,
                      batch_size=settings.batch_size or engine.batch_size(),
                      progress=lambda stage: None if args.json else warn(f"{stage}..."))
    report["model"] = engine.name
    emit(args, report, _report_lines(report))
    return 0


def _report_lines(report: dict) -> list[str]:
    lines = [f"model {report['model']}: {report['images']} images, {report['captions']} captions, "
             f"{report['questions']} questions"]
    for key, title in (("t2i", "text->image"), ("t2i_rerank", "text->image, ITM rerank"),
                       ("i2t", "image->text"), ("i2t_rerank", "image->text, ITM rerank")):
        if key in report:
            lines.append(f"{title:<26} " + "  ".join(f"R@{k[1:]} {v:.3f}" for k, v in report[key].items()))
    for key in ("caption_exact_match", "caption_bleu4", "vqa_accuracy"):
        if key in report:
            lines.append(f"{key.replace('_', ' '):<26} {report[key]:.3f}")
    for kind, value in report.get("vqa_by_kind", {}).items():
        lines.append(f"  vqa, {kind:<22} {value:.3f}")
    return lines


def stats(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    collection = open_collection(settings)
    try:
        payload = collection.stats()
    finally:
        collection.close()
    emit(args, payload, [f"{key}: {value}" for key, value in payload.items()])
    return 0


def demo(args: argparse.Namespace) -> int:
    """Sample images, the demo model and a tour."""
    from .demo import run

    return run(args, settings_from(args))


def train_demo(args: argparse.Namespace) -> int:
    """Train the demo model from scratch on the shapes world (about `--minutes` on 2 cores)."""
    from search.models.training import DemoConfig, train

    config = DemoConfig(minutes=args.minutes, seed=args.seed, max_steps=args.max_steps,
                        shape_focus=args.shape_focus, vision_minutes=args.vision_minutes)
    report = train(Path(args.out), config, log=(lambda line: None) if args.json else warn)
    emit(args, {k: v for k, v in report.items() if k != "history"},
         [f"trained {report['steps']} steps in {report['seconds']} s; the model is in {args.out}"])
    return 0
