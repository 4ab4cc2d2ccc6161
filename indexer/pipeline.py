"""The local indexing driver: scan roots, decode in worker processes, embed and caption in
batches, commit each batch.

Decoding runs ahead of the model in a bounded window of worker-process tasks, so the CPU
decodes the next batch while the model works on this one. Each batch is committed on its
own: a kill loses at most the batch in flight, and the next run resumes where this one
stopped (committed files are then unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TypeVar

from search import memory
from search.collection import Collection
from search.config import IndexType
from search.media import ocr
from search.query.searcher import Searcher
from search.records import ImageFile, ModelInfo
from search.schemas import IndexSummary

from .guard import DEFAULT_SHARE, guard, mark
from .scan import plan_roots
from .steps import apply_plan, commit, embed, features_of, finish
from .workers import decoded

Progress = Callable[[int], None]
T = TypeVar("T")
ModelTurn = Callable[[Callable[[], T]], T]  # runs one piece of model work, returns its result
DECODE_BATCH = 16  # files decoded together where no model runs (reading text in images indexed before)


def at_once(work: Callable[[], T]) -> T:
    """A `ModelTurn` that runs the work here and now. A server passes its runner's instead, so
    that an index job's batches take their turns with the searches (`api.runner`)."""
    return work()


@dataclass(frozen=True)
class IndexOptions:
    captions: bool = True
    ocr: bool = True  # read the text written in images (search.media.ocr); also for those indexed without
    batch_size: int | None = None  # None: the engine's `batch_size()`, sized to the memory budget
    max_memory: int | None = None  # bytes the run may hold; None: `memory.memory_budget()`
    workers: int = 2  # decoding processes; 0 decodes in this process
    exclude: Sequence[str] = ()
    index_type: IndexType | None = None  # None: keep the index's
    wait: bool = True  # for another writer to finish; False: IndexBusy, nothing changed
    keep_features: bool = False  # keep each image's encoder output from now on (remembered)
    max_removals: float | None = DEFAULT_SHARE  # of a root's images one run may remove (`guard`); 1: any


def index_paths(
    collection: Collection, engine, roots: Iterable[Path], options: IndexOptions,
    progress: Callable[[int], Progress] | None = None, notify: Callable[[str], None] | None = None,
    *, turn: ModelTurn = at_once,
) -> IndexSummary:
    """Bring the collection up to date with `roots`, as its one writer (`notify` hears whom
    it waits for). Raises before any change when a root is missing or holds no images.
    `progress(total)` returns a per-file callback; `turn` runs each batch's model work."""
    if options.ocr:
        ocr.check()  # a missing reader stops the run here, before anything changes
    with collection.writing(wait=options.wait, waiting=notify):
        collection.bind_model(ModelInfo(engine.name, engine.query_tokens, engine.dim))
        if options.index_type:
            collection.set_index_type(options.index_type)
        if options.keep_features:
            collection.keep_features()
        return _index(collection, engine, roots, options, progress, turn)


def _index(collection: Collection, engine, roots: Iterable[Path], options: IndexOptions,
           progress: Callable[[int], Progress] | None, turn: ModelTurn) -> IndexSummary:
    plans = plan_roots(collection, roots, options.exclude)
    summary = IndexSummary(paused=guard(plans, options.max_removals))
    calls_before = engine.model_calls
    todo = [file for root_plan in plans for file in root_plan.embed]
    # sized to the memory the model's parts leave, which builds them: only when there is model
    # work (a pass over unchanged files, a watcher's reconcile, loads no model at all)
    sizing = cache(lambda: options.batch_size or engine.batch_size(budget=options.max_memory,
                                                                     captions=options.captions))
    batch_size = sizing() if todo else options.batch_size or DECODE_BATCH
    tick = progress(len(todo)) if progress else (lambda n: None)
    for root_plan in plans:
        apply_plan(collection, root_plan, summary)
    window = max(2, options.workers) * batch_size
    keep = collection.keeps_features
    with memory.reusing_memory():  # each batch's activations reuse the last one's pages
        for batch in _batches(decoded(todo, options.workers, window, ocr=options.ocr), batch_size):
            turn(partial(embed, engine, batch, captions=options.captions, features=keep, size=batch_size))
            commit(collection, batch, summary)
            tick(len(batch))
    finish(collection, plans, summary)
    mark(plans, summary.paused)
    if collection.catalog.albums.all():  # each album judges what this run wrote, as it is published
        turn(partial(Searcher(collection, engine).albums.update))
    if keep:
        summary.features += _gain_features(collection, engine, options, sizing, progress, turn)
    summary.text += gain_readings(collection, options, batch_size, progress)
    summary.model_calls = engine.model_calls - calls_before
    return summary


def _gain_features(collection: Collection, engine, options: IndexOptions, sizing: Callable[[], int],
                   progress: Callable[[int], Progress] | None, turn: ModelTurn) -> int:
    """Stored features for the images indexed before they were kept: decoded and run
    through the image encoder only."""
    def gain(batch: dict[int, ImageFile]) -> int:
        kept = turn(partial(features_of, engine, batch))
        if kept:
            collection.add_features(kept)
        return len(kept)

    lacking = collection.catalog.features.lacking(engine.feature_key("retrieval"))
    return _decode_again(collection, lacking, options, sizing(), progress, gain) if lacking else 0


def gain_readings(collection: Collection, options: IndexOptions, batch_size: int,
                   progress: Callable[[int], Progress] | None) -> int:
    """The picture hash, and with OCR the text, of the images indexed before they were
    made (or with OCR off): decoded and read here, no model call. Returns how many gained
    their text."""
    def gain(batch: dict[int, ImageFile]) -> int:
        readings = {image_id: (file.text, file.picture_hash) for image_id, file in batch.items()
                    if file.error is None}
        collection.set_readings(readings)
        return sum(text is not None and before[image_id] is None for image_id, (text, _) in readings.items())

    unread = collection.catalog.listing.unread(text=options.ocr, picture=True)
    before = {image_id: record.text for image_id, record in collection.catalog.get_many(unread).items()}
    return _decode_again(collection, unread, options, batch_size, progress, gain, ocr=options.ocr)


Gain = Callable[[dict[int, ImageFile]], int]


def _decode_again(collection: Collection, ids: list[int], options: IndexOptions, batch_size: int,
                  progress: Callable[[int], Progress] | None, gain: Gain, *, ocr: bool = False) -> int:
    """Decode the indexed images `ids` again (with `ocr`, reading the text of those that
    have none), a batch at a time through `gain`; the sum of what it returns."""
    records = collection.catalog.get_many(ids)
    files = {image_id: ImageFile(path=record.path, size=record.size, mtime=record.mtime, root=record.root,
                                 content_hash=record.content_hash, text=record.text)
             for image_id, record in records.items()}
    tick = progress(len(files)) if progress and files else (lambda n: None)
    window = max(2, options.workers) * batch_size
    order, gained, done = list(files), 0, 0
    pictures = decoded(list(files.values()), options.workers, window, ocr=ocr)
    for batch in _batches(pictures, batch_size):
        gained += gain(dict(zip(order[done : done + len(batch)], batch, strict=True)))
        done += len(batch)
        tick(len(batch))
    return gained


def _batches(files: Iterator[ImageFile], size: int) -> Iterator[list[ImageFile]]:
    """Files in batches of about `size` pictures: an image is one, a video as many as its
    moments (its moments are committed with it, in one batch)."""
    batch: list[ImageFile] = []
    pictures = 0
    for file in files:
        batch.append(file)
        pictures += len(file.moments) if file.moments is not None else 1
        if pictures >= size:
            yield batch
            batch, pictures = [], 0
    if batch:
        yield batch
