"""What the app holds for its lifetime: settings, the collection, the engine, the queues."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass
class AppState:
    settings: Settings
    collection: Collection
    engine: Blip2Engine
    searcher: Searcher
    runner: ModelRunner
    jobs: JobManager
    metrics: Metrics

    def close(self) -> None:
        self.jobs.shutdown()
        self.runner.shutdown()
        self.collection.close()


def start(settings: Settings, metrics: Metrics) -> AppState:
    """Open the index (creating it if needed), set up the threads and load the engine once."""
    collection = Collection.open(settings.index, create=True, url=settings.database_url)
    model = collection.model_to_load(settings.model)
    runtime.configure(settings.threads)
    engine = Blip2Engine.from_settings(settings, model)
    searcher = Searcher(collection, engine, timer=metrics.timer)
    state = AppState(settings, collection, engine, searcher, ModelRunner(settings.queue_size),
                     JobManager(lambda job: run_index_job(state, job)), metrics)
    return state


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
        options = IndexOptions(batch_size=settings.batch_size, workers=settings.workers,
                               keep_features=job.keep_features, ocr=job.ocr)
        return index_paths(collection, state.engine, [Path(p) for p in job.paths], options, progress,
                           turn=state.runner.turn)
    finally:
        collection.close()
        state.collection.refresh()
