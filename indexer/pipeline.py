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
    plans = [plan(collection.catalog, Path(root).expanduser().resolve(), options.exclude) for root in roots]
    summary = IndexSummary()
    calls_before = engine.model_calls
    todo = [(p.root, item) for p in plans for item in p.embed]
    tick = progress(len(todo)) if progress else (lambda n: None)
    for root_plan in plans:
        _apply_cheap_changes(collection, root_plan, summary)
    for batch in _decoded_batches(todo, options):
        _index_batch(collection, engine, batch, options, summary)
        tick(len(batch))
    for root_plan in plans:
        ids = [record.id for record in root_plan.removed]
        collection.catalog.remove(ids)
        collection.vectors.remove(np.array(ids, dtype=np.int64))
        summary.removed += len(ids)
    collection.save_vectors()
    summary.model_calls = engine.model_calls - calls_before
    return summary


def _apply_cheap_changes(collection: Collection, root_plan: Plan, summary: IndexSummary) -> None:
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


@dataclass
class _Job:
    root: str
    info: FileInfo
    digest: str
    is_update: bool
    decoded: Decoded


def _index_batch(collection: Collection, engine, batch: list[_Job], options, summary) -> None:
    good = [job for job in batch if job.decoded.image is not None]
    vectors = captions = None
    if good:
        images = engine.encode([job.decoded.image for job in good])
        vectors = engine.embed_images(images).astype(np.float16).astype(np.float32)  # as stored
        captions = engine.caption(images) if options.captions else [None] * len(good)
    results = iter(zip(vectors if good else [], captions if good else [], strict=True))
    rows = []
    for job in batch:
        d = job.decoded
        row = NewImage(path=job.info.path, root=job.root, content_hash=job.digest, size=job.info.size,
                       mtime=job.info.mtime)
        if d.image is None:
            row.status, row.error = "failed", d.error
            summary.failed += 1
            summary.errors.append({"path": job.info.path, "error": d.error})
        else:
            row.vectors, row.caption = next(results)
            row.width, row.height, row.taken_at = d.image.width, d.image.height, d.taken_at
            summary.updated += job.is_update
            summary.added += not job.is_update
        rows.append(row)
    for job in good:  # before the commit: every committed image has its thumbnail
        collection.write_thumbnail(job.digest, job.decoded.thumbnail)
    ids = collection.catalog.write(rows)  # one transaction: the batch is in, or not at all
    readable = np.array([row.vectors is not None for row in rows], dtype=bool)
    ok_ids = np.array(ids, dtype=np.int64)[readable]
    failed_ids = np.array(ids, dtype=np.int64)[~readable]
    collection.vectors.remove(failed_ids)  # a file that became unreadable loses its old vectors
    if len(ok_ids):
        collection.vectors.add(ok_ids, vectors)


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
