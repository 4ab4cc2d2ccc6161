"""Embedding files on a Ray cluster with Ray Data: the only module of `indexer` that imports ray.

    read_binary_files(paths) ─ map_batches(Embedder): decode, embed, caption, in an actor pool
                             ─ rows streamed to the driver, grouped into shards as they complete

One model per actor, loaded once. A file that cannot be decoded becomes a row with its
error, never a failed job. Imported only for `index --ray` (the [distributed] extra).
"""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.data

from search import runtime
from search.config import DEFAULT_PRECISION, Precision
from search.errors import InputError, SearchError
from search.records import ImageFile, ModelInfo

from ..plan import bytes_hash
from ..steps import decode, embed
from . import shards
from .shards import ShardSpec

RAISED = re.compile(r"^[\w.]*(Error|Exception): \S")  # the last line of a traceback
GONE = "file not found"  # a file the plan saw that the read no longer found


class DistributedError(SearchError):
    """Ray could not be reached, or the job failed (a worker kept crashing, a model did not load)."""


@dataclass(frozen=True)
class Job:
    model: str  # a preset or a checkpoint folder every node can reach
    device: str = "auto"
    precision: Precision = DEFAULT_PRECISION  # the workers' (`Blip2Engine.load`)
    captions: bool = True
    ocr: bool = False  # read the text written in the pictures (search.media.ocr)
    batch_size: int = 16  # images a model call
    actors: int | None = None  # None: one a GPU, else one a node
    address: str | None = None  # None: a local Ray instance sized to this machine
    filesystem: Any = None  # a pyarrow.fs.FileSystem the workers read the paths through


@dataclass(frozen=True)
class Layout:
    actors: int
    num_cpus: float
    num_gpus: int
    threads: int  # torch threads in each actor
    device: str


def compute(specs: list[ShardSpec], job: Job, write: Callable[[str, pa.Table], None],
            tick: Callable[[int], None]) -> int:
    """Embed the files of `specs`, calling `write(name, rows)` as each shard completes;
    returns the model calls the workers made."""
    with connected(job.address):
        layout = plan_layout(job, [n["Resources"] for n in ray.nodes() if n["Alive"]])
        paths = [path for spec in specs for path in spec.paths]
        try:
            return _collect(_dataset(paths, job, layout), specs, write, tick)
        except ray.exceptions.RayError as exc:
            raise DistributedError(f"the Ray job failed: {_reason(exc)}") from None


@contextmanager
def connected(address: str | None) -> Iterator[None]:
    """Ray for the length of a job: the caller's own session when there is one (a notebook,
    the tests), else the cluster at `address`, else a new local instance."""
    if ray.is_initialized():
        yield
        return
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}  # errors come back as exceptions
    try:
        if address:
            _check_reachable(address)
            ray.init(address=address, **quiet)
        else:
            ray.init(address="local", num_cpus=runtime.cores(), include_dashboard=False, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise DistributedError(f"cannot start or reach {where}: {_first_line(exc)}") from None
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # a session of ours is quiet: no per-stage logs
    try:
        yield
    finally:
        ray.shutdown()


def plan_layout(job: Job, nodes: list[dict]) -> Layout:
    """Actors and their resources: one a GPU when the cluster has GPUs, else one a node with
    every CPU of the smallest node but one. That CPU is left for the read tasks: with the
    actors holding every CPU, reading waits forever (2 CPUs, 2 actors of 1 CPU: a deadlock)."""
    gpus = sum(int(node.get("GPU", 0)) for node in nodes)
    if gpus and job.device != "cpu":
        return Layout(job.actors or gpus, 1, 1, 1, "cuda")
    cpus = [node["CPU"] for node in nodes if node.get("CPU", 0) > 0]
    if not cpus:
        raise DistributedError("the Ray cluster has no CPU to run on")
    smallest = min(cpus)
    per_actor = smallest - 1 if smallest >= 2 else smallest / 2
    device = "cpu" if job.device == "auto" else job.device
    return Layout(job.actors or len(cpus), per_actor, 0, max(1, int(smallest)), device)


def _dataset(paths: list[str], job: Job, layout: Layout):
    files = ray.data.read_binary_files(paths, include_paths=True, ignore_missing_paths=True,
                                       filesystem=job.filesystem)
    dataset = files.map_batches(
        Embedder, fn_constructor_args=(job.model, layout.device, job.precision, job.captions, layout.threads,
                                       job.ocr),
        compute=ray.data.ActorPoolStrategy(size=layout.actors), batch_size=job.batch_size,
        num_cpus=layout.num_cpus, num_gpus=layout.num_gpus, batch_format="numpy",
    )
    dataset.context.enable_progress_bars = False  # this dataset's own copy: the CLI shows its own bar
    dataset.context.print_on_execution_start = False
    return dataset


def _collect(dataset, specs: list[ShardSpec], write, tick) -> int:
    """Group streamed rows by shard, writing each shard once it holds all its files."""
    shard_of = {path: spec for spec in specs for path in spec.paths}
    waiting: dict[str, list[dict]] = {spec.name: [] for spec in specs}
    calls, model = 0, None
    for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
        calls += int(pc.sum(batch["model_calls"]).as_py() or 0)
        for row in batch.to_pylist():
            spec = shard_of[row["path"]]
            rows = waiting[spec.name]
            rows.append(row)
            model = model or row
            if len(rows) == len(spec.files):
                write(spec.name, shards.table(waiting.pop(spec.name)))
        tick(batch.num_rows)
    if waiting and model is None:
        raise InputError("none of the files to index could be read (deleted since the scan?); "
                         "nothing was changed")
    for spec in specs:  # files gone between the plan and the read: failed, like any unreadable file
        if spec.name in waiting:
            rows = waiting.pop(spec.name)
            seen = {row["path"] for row in rows}
            rows += [{"path": path, "content_hash": digest, "error": GONE, "model": model["model"],
                      "queries": model["queries"], "dim": model["dim"]}
                     for path, digest in spec.files if path not in seen]
            write(spec.name, shards.table(rows))
    return calls


class Embedder:
    """A Ray Data actor: one model, loaded once; a batch of files in, their shard rows out."""

    def __init__(self, model: str, device: str, precision: Precision, captions: bool, threads: int,
                 ocr: bool = False) -> None:
        from search.models import Blip2Engine

        runtime.configure(threads, searches=False)  # a worker embeds: no FAISS, no catalog
        self.engine = Blip2Engine.load(model, device=device, precision=replace(precision, query="float32"))
        self.captions, self.ocr = captions, ocr
        self.model = ModelInfo(self.engine.name, self.engine.query_tokens, self.engine.dim)

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        files = []
        for path, data in zip(batch["path"], batch["bytes"], strict=True):
            data = bytes(data)
            file = ImageFile(str(path), len(data), 0.0, content_hash=bytes_hash(data))
            files.append(decode(file, data, ocr=self.ocr))
        before = self.engine.model_calls
        embed(self.engine, files, captions=self.captions)
        made = shards.rows(files, self.model)
        made[0]["model_calls"] = self.engine.model_calls - before
        return shards.table(made)


def _check_reachable(address: str) -> None:
    """Fail at once on a `host:port` nothing listens at (ray.init retries one for minutes)."""
    found = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address)
    if found is None:
        return  # `auto`, or another form ray.init resolves itself
    try:
        socket.create_connection((found[1], int(found[2])), timeout=10).close()
    except OSError as exc:
        raise DistributedError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0]


def _reason(exc: BaseException) -> str:
    """The worker's own error where the Ray error carries it (a model that did not load),
    else the Ray error's first line."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, SearchError):
        return str(cause)
    raised = [line.strip() for line in str(exc).splitlines() if RAISED.match(line.strip())]
    return raised[-1] if raised else _first_line(exc)
