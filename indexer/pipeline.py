"""Indexing: scan roots, decode in worker processes, embed and caption in batches, commit.

Decoding runs ahead of the model in a bounded window of worker-process tasks, so the CPU
decodes the next batch while the model works on this one. Each batch is committed to the
catalog on its own: a kill loses at most the batch in flight, and the next run resumes
where this one stopped (committed files are then unchanged).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np

from search.catalog import NewImage
from search.collection import Collection, ModelInfo

from .decode import Decoded, decode, watch_parent
from .scan import FileInfo, Plan, plan

Progress = Callable[[int], None]


@dataclass(frozen=True)
class IndexOptions:
    captions: bool = True
    batch_size: int | None = None  # None: the engine's `batch_size()`, sized to memory
    workers: int = 2  # decoding processes; 0 decodes in this process
    exclude: Sequence[str] = ()


@dataclass
class IndexSummary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    model_calls: int = 0
    errors: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(self.__dict__)


def index_paths(
    collection: Collection, engine, roots: Iterable[Path], options: IndexOptions,
    progress: Callable[[int], Progress] | None = None,
) -> IndexSummary:
    """Bring the catalog and vector index up to date with `roots`. Raises before any change
    when a root is missing or holds no images. `progress(total)` returns a per-file callback."""
    collection.bind_model(ModelInfo(engine.name, engine.query_tokens, engine.dim))
    if options.batch_size is None:
        options = replace(options, batch_size=engine.batch_size())
    plans = plan_roots(collection, roots, options.exclude)
    summary = IndexSummary()
    calls_before = engine.model_calls
    todo = [(p.root, item) for p in plans for item in p.embed]
    tick = progress(len(todo)) if progress else (lambda n: None)
    for root_plan in plans:
        apply_cheap_changes(collection, root_plan, summary)
    for batch in _decoded_batches(todo, options):
        commit(collection, _embed_batch(engine, batch, options.captions), summary)
        tick(len(batch))
    finish(collection, plans, summary)
    summary.model_calls = engine.model_calls - calls_before
    return summary


def plan_roots(collection: Collection, roots: Iterable[Path], exclude: Sequence[str]) -> list[Plan]:
    """What changed under each root since the catalog last saw it (`scan.plan`); no change yet."""
    return [plan(collection.catalog, Path(root).expanduser().resolve(), exclude) for root in roots]


def apply_cheap_changes(collection: Collection, root_plan: Plan, summary: IndexSummary) -> None:
    """Everything that needs no model: unchanged, touched, moved and duplicate files."""
    catalog = collection.catalog
    summary.unchanged += len(root_plan.unchanged) + len(root_plan.touched)
    for record, info in root_plan.touched:
        catalog.touch(record.id, size=info.size, mtime=info.mtime)
    for record, info in root_plan.moved:
        catalog.move(record.id, path=info.path, root=root_plan.root, size=info.size, mtime=info.mtime)
        summary.moved += 1
    model = collection.model
    for twin, info in root_plan.copied:  # same content as an indexed file: reuse its results
        vectors = catalog.vectors(twin.id, (model.queries, model.dim))
        [new_id] = catalog.write([NewImage(
            path=info.path, root=root_plan.root, content_hash=twin.content_hash, size=info.size,
            mtime=info.mtime, width=twin.width, height=twin.height, taken_at=twin.taken_at,
            caption=twin.caption, vectors=vectors,
        )])
        collection.vectors.add(np.array([new_id]), vectors[None])
        summary.added += 1


def finish(collection: Collection, plans: list[Plan], summary: IndexSummary) -> None:
    """Drop the files that vanished from the roots, then save the vector snapshot."""
    for root_plan in plans:
        ids = [record.id for record in root_plan.removed]
        collection.catalog.remove(ids)
        collection.vectors.remove(np.array(ids, dtype=np.int64))
        summary.removed += len(ids)
    collection.save_vectors()


@dataclass
class Embedded:
    """One file's outcome, ready to commit: what the model made of it, or why it failed."""

    root: str
    info: FileInfo
    content_hash: str
    is_update: bool
    vectors: np.ndarray | None = None  # (Q, D) float32 holding float16 values, as stored
    caption: str | None = None
    width: int | None = None
    height: int | None = None
    taken_at: datetime | None = None
    thumbnail: bytes | None = None  # WebP
    error: str | None = None


def embed_images(engine, images: list, captions: bool) -> tuple[np.ndarray, list[str | None]]:
    """(B, Q, D) float16 vectors, as the catalog stores them, and the captions (or Nones)."""
    batch = engine.encode(images)
    vectors = engine.embed_images(batch).astype(np.float16)
    return vectors, engine.caption(batch) if captions else [None] * len(images)


def commit(collection: Collection, items: list[Embedded], summary: IndexSummary) -> None:
    """Write a batch of outcomes in one transaction (the batch is in, or not at all), then
    bring the vector index in step with it."""
    rows = []
    for item in items:
        row = NewImage(path=item.info.path, root=item.root, content_hash=item.content_hash,
                       size=item.info.size, mtime=item.info.mtime)
        if item.vectors is None:
            row.status, row.error = "failed", item.error
            summary.failed += 1
            summary.errors.append({"path": item.info.path, "error": item.error})
        else:
            row.vectors, row.caption, row.width, row.height, row.taken_at = (
                item.vectors, item.caption, item.width, item.height, item.taken_at)
            summary.updated += item.is_update
            summary.added += not item.is_update
        rows.append(row)
    for item in items:  # before the commit: every committed image has its thumbnail
        if item.vectors is not None and item.thumbnail is not None:
            collection.write_thumbnail(item.content_hash, item.thumbnail)
    ids = np.array(collection.catalog.write(rows), dtype=np.int64)
    readable = np.array([item.vectors is not None for item in items], dtype=bool)
    collection.vectors.remove(ids[~readable])  # a file that became unreadable loses its old vectors
    if readable.any():
        collection.vectors.add(ids[readable], np.stack([item.vectors for item in items
                                                        if item.vectors is not None]))


@dataclass
class _Job:
    root: str
    info: FileInfo
    digest: str
    is_update: bool
    decoded: Decoded


def _embed_batch(engine, batch: list[_Job], captions: bool) -> list[Embedded]:
    good = [job for job in batch if job.decoded.image is not None]
    vectors, texts = embed_images(engine, [job.decoded.image for job in good], captions) if good else ([], [])
    results = iter(zip(vectors, texts, strict=True))
    items = []
    for job in batch:
        d = job.decoded
        item = Embedded(job.root, job.info, job.digest, job.is_update, error=d.error)
        if d.image is not None:
            vector, item.caption = next(results)
            item.vectors = vector.astype(np.float32)
            item.width, item.height, item.taken_at, item.thumbnail = (
                d.image.width, d.image.height, d.taken_at, d.thumbnail)
        items.append(item)
    return items


def _decoded_batches(todo: list[tuple[str, tuple]], options: IndexOptions) -> Iterator[list[_Job]]:
    """Batches of decoded files, decoding up to a few batches ahead in worker processes."""
    if not todo:
        return
    paths = [info.path for _, (info, _, _) in todo]
    with _executor(options.workers) as pool:
        decoded = _bounded_map(pool, paths, window=max(2, options.workers) * options.batch_size)
        batch: list[_Job] = []
        for (root, (info, digest, is_update)), result in zip(todo, decoded, strict=True):
            batch.append(_Job(root, info, digest, is_update, result))
            if len(batch) == options.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def _bounded_map(pool: Executor | None, paths: list[str], window: int) -> Iterator[Decoded]:
    if pool is None:
        yield from map(decode, paths)
        return
    pending: deque = deque()
    queue = iter(paths)
    for path in queue:
        pending.append(pool.submit(decode, path))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class _Inline:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _executor(workers: int):
    if workers <= 0:
        return _Inline()
    # spawn: workers never inherit the parent's torch threads or model memory, and are its
    # direct children, so they can notice when it dies.
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=watch_parent, initargs=(os.getpid(),),
    )
