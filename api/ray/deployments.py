"""What runs in the replicas: a shard (`Shard`), a part of the model (`ModelPart`), and the
FastAPI app as ingress (`Ingress`), whose collection reads the shards and whose engine is
the parts (`remote`).

Each replica builds what it serves in its constructor, before Serve counts it as started: a
shard maps its files from local disk (never through the object store), a model part loads
its weights. Serve waits for a replica's constructor however long it takes; its health
check starts after it.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from search import runtime
from search.collection import Collection
from search.config import Settings
from search.errors import CollectionError
from search.models import Blip2Engine
from search.query.searcher import Searcher
from search.store.shards import FaissShard, ShardedIndex
from search.store.shards.fanout import READ_ONLY

from ..app import create_app
from ..jobs import JobManager
from ..metrics import Metrics
from ..runner import ModelRunner
from ..state import AppState
from .remote import RayShards, RemoteEngine

PARTS = {"text": ("text",), "match": ("encoder", "retrieval"),
         "decoder": ("encoder", "retrieval", "generation", "language_model")}


class Shard:
    """One shard's replica: `FaissShard` over the shard's folder on this node."""

    def __init__(self, root: str, number: int, start_delay_s: float = 0.0) -> None:
        if start_delay_s:  # a replica that is slow to start (the conformance suite's)
            import time

            time.sleep(start_delay_s)
        self.engine = FaissShard(Path(root), number)

    def text(self, text_vecs, k, allowed=None):
        return self.engine.text(text_vecs, k, allowed)

    def similar(self, query, k, allowed=None, depth=None):
        return self.engine.similar(query, k, allowed, depth)

    def info(self) -> dict:
        import ray

        return self.engine.info() | {"node": ray.get_runtime_context().get_node_id()}


class ModelPart:
    """The parts of the engine one deployment serves (`PARTS`), built at start."""

    def __init__(self, settings: Settings, model: str, part: str) -> None:
        runtime.configure(settings.threads)
        self.engine = Blip2Engine.from_settings(settings, model)
        self.engine.prepare(PARTS[part])

    def describe(self) -> dict:
        engine = self.engine
        return {"name": engine.name, "device": engine.device, "precision": engine.precision,
                "loaded": sorted({name for names in PARTS.values() for name in names})}

    def call(self, name: str, args: tuple, kwargs: dict):
        return getattr(self.engine, name)(*args, **kwargs)


class Ingress:
    """The FastAPI app (`api.app`), its collection's vectors in the shards, its engine the
    model parts."""

    def __init__(self, settings: Settings, root: str, shards: list, parts: dict, timeout_s: float) -> None:
        self.settings, self.root, self.shards, self.parts = settings, root, shards, parts
        self.timeout_s = timeout_s

    def __serve_build_asgi_app__(self):
        return create_app(self.settings, start=partial(_state, root=self.root, shards=self.shards,
                                                       parts=self.parts, timeout_s=self.timeout_s))


def _state(settings: Settings, metrics: Metrics, *, root: str, shards: list, parts: dict,
           timeout_s: float) -> AppState:
    vectors = ShardedIndex(Path(root), RayShards(shards, timeout_s))
    collection = Collection.open(settings.index, url=settings.database_url, vectors=vectors)
    engine = RemoteEngine(parts)
    searcher = Searcher(collection, engine, timer=metrics.timer)
    return AppState(settings, collection, engine, searcher, ModelRunner(settings.queue_size),
                    JobManager(_refused), metrics)


def _refused(job):
    raise CollectionError(READ_ONLY)
