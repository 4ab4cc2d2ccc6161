"""What the app holds for its lifetime: settings, the collection, the engine, the queues."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from indexer.pipeline import IndexOptions, index_paths
from search import runtime
from search.collection import Collection
from search.config import Settings
from search.models import Blip2Engine
from search.query.searcher import Searcher
from search.schemas import IndexSummary

from .jobs import Job, JobManager
from .metrics import Metrics
from .runner import ModelRunner
from .watching import Watching, WatchSetup


@dataclass
class AppState:
    settings: Settings
    collection: Collection
    engine: Blip2Engine
    searcher: Searcher
    runner: ModelRunner
    jobs: JobManager
    metrics: Metrics
    loader: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="parts"))
    watch: Watching | None = None  # `serve --watch`

    async def ready(self, *parts: str) -> None:
        """The model parts a request needs, built first if they are not (at real size, up to a
        minute for the language model): on a thread of their own, so the model thread goes
        on serving the requests that need only parts already built (text searches)."""
        missing = [name for name in parts if name not in self.engine.loaded]
        if missing:
            await asyncio.get_running_loop().run_in_executor(self.loader, self.engine.prepare, missing)

    def close(self) -> None:
        if self.watch:
            self.watch.close()
        self.jobs.shutdown()
        self.runner.shutdown()
        self.loader.shutdown(wait=True)
        self.collection.close()


def start(settings: Settings, metrics: Metrics, watch: WatchSetup | None = None) -> AppState:
    """Open the index (creating it if needed), set up the threads and open the engine with
    its text side built: text searches are answered from the start, and every other part
    is built when a request first needs it (`AppState.ready`). With `watch`, its roots are
    followed from then on, each pass an index job (`api.watching`)."""
    collection = Collection.open(settings.index, create=True, url=settings.database_url)
    model = collection.model_to_load(settings.model)
    runtime.configure(settings.threads)
    engine = Blip2Engine.from_settings(settings, model)
    engine.prepare(TEXT)
    searcher = Searcher(collection, engine, timer=metrics.timer)
    state = AppState(settings, collection, engine, searcher, ModelRunner(settings.queue_size),
                     JobManager(lambda job: run_index_job(state, job)), metrics)
    if watch:
        state.watch = Watching(state.jobs, watch)
    return state


TEXT = ("text",)
IMAGE = ("encoder", "retrieval")  # an uploaded image's vectors
MATCH = ("retrieval",)  # the match head, on stored features (the encoder, when none are stored)
ANSWER = ("generation", "language_model")


def search_parts(matched: bool, where: Sequence) -> tuple[str, ...]:
    """What a search needs: the text side, the match head for a rerank, a cutoff or a date
    order, and the language model for `where` conditions."""
    return TEXT + (MATCH if matched or where else ()) + (ANSWER if where else ())


def run_index_job(state: AppState, job: Job) -> IndexSummary:
    """Index through a collection of its own, so searches keep using the server's vector
    index meanwhile; then the server's collection refreshes and sees the new images."""
    settings = state.settings
    collection = Collection.open(settings.index, create=True, url=settings.database_url)

    def progress(total: int):  # once a pass: new files, then older ones gaining their text or features
        job.total = (job.total or 0) + total

        def tick(n: int) -> None:
            job.done += n

        return tick

    try:
        options = IndexOptions(batch_size=settings.batch_size, max_memory=settings.memory_budget,
                               workers=settings.workers, keep_features=job.keep_features, ocr=job.ocr,
                               exclude=job.exclude, max_removals=job.max_removals)
        return index_paths(collection, state.engine, [Path(p) for p in job.paths], options, progress,
                           turn=state.runner.turn)
    finally:
        collection.close()
        state.collection.refresh()
