"""What the app holds for its lifetime: settings, the collection, the engine, the queues."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from indexer.pipeline import IndexOptions, index_paths
from search.collection import Collection
from search.config import Settings
from search.models import Blip2Engine
from search.queries import Searcher

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
    """Open the index (creating it if needed) and load the engine once."""
    collection = Collection.open(settings.index, create=True, url=settings.database_url)
    indexed = collection.model.name if collection.model else None
    engine = Blip2Engine.from_settings(settings, settings.model_for(indexed))
    searcher = Searcher(collection, engine, timer=metrics.timer)
    state = AppState(settings, collection, engine, searcher, ModelRunner(settings.queue_size),
                     JobManager(lambda job: run_index_job(state, job)), metrics)
    return state


def run_index_job(state: AppState, job: Job) -> dict:
    """Index in a collection of its own; swap its vector index in when done, so searches keep
    using the previous one meanwhile and the new images become searchable at the end."""
    settings = state.settings
    collection = Collection.open(settings.index, create=True, url=settings.database_url)

    def progress(total: int):
        job.total = total

        def tick(n: int) -> None:
            job.done += n

        return tick

    try:
        options = IndexOptions(batch_size=settings.batch_size, workers=settings.workers)
        summary = index_paths(collection, state.engine, [Path(p) for p in job.paths], options, progress)
        state.collection.vectors = collection.vectors
        return summary.to_json()
    finally:
        collection.close()
