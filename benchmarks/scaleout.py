"""`scaleout`: one machine against a collection in shards on Ray Serve, side by side in one
run, on one synthetic collection (clustered vectors, `query.Data`).

- one machine: the collection as one shard (`FaissShard`), asked in this process;
- sharded: the same images in `shards` shards, each a Ray Serve deployment on this
  machine's Ray instance, asked through `RayShards` (what `serve --ray`'s ingress does);
- the fan-out's own cost: the same shards asked in this process (`LocalShards`), against
  Ray Serve.

Each: p50 and p99 of a text search (top 10) and of a similar-image search (top 10, an
indexed image's vectors), and searches a second with 8 clients at once.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from search.query.similar import SIMILAR_DEPTH
from search.store.shards import LocalShards, ShardedIndex, write_shards

from .query import Data

CLIENTS = 8


def run(images: int, shards: int = 4, *, kind: str = "compressed", probes: int = 40, scratch=None,
        log=print) -> dict:
    """One set at a time on disk (at 1,000,000 images each is 16 GB of stored vectors): the
    collection as one shard, measured and removed, then as `shards`."""
    data = Data("clustered", images, 32, 256)
    texts = data.probes(probes)
    similar = [vectors for _, vectors in zip(range(max(2, probes // 4)), _some_images(data), strict=False)]
    out = {"images": images, "shards": shards, "kind": kind, "clients": CLIENTS, "probes": probes}
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        one = _written(Path(folder) / "one", 1, data, kind, log)
        out["one_machine"] = _measure(one, texts, similar)
        reference = [first.ids for first in one.search(texts, 10)]
        root, one = one.root, None
        gc.collect()  # its stored vectors unmapped: a removed file's blocks are freed only then
        shutil.rmtree(root)
        local = _written(Path(folder) / "many", shards, data, kind, log)
        out["in_process"] = _measure(local, texts, similar)
        answers = [first.ids for first in local.search(texts, 10)]
        with _on_ray(local.root, shards) as sharded:
            out["ray_serve"] = _measure(sharded, texts, similar)
            # the same shards asked through Serve or here: the same answer
            out["ray_serve_same_as_in_process"] = all(
                np.array_equal(a.ids, b) for a, b in zip(sharded.search(texts, 10), answers, strict=True))
    # compressed shards propose their own candidates: how many of one machine's top 10 they keep
    out["top10_agreement_with_one_machine"] = round(float(np.mean(
        [len(np.intersect1d(a, b)) / 10 for a, b in zip(answers, reference, strict=True)])), 3)
    out["fanout_ms_p50"] = round(out["ray_serve"]["text_p50_ms"] - out["in_process"]["text_p50_ms"], 2)
    log(f"scaleout: {out}")
    return out


def _written(root: Path, count: int, data: Data, kind: str, log) -> ShardedIndex:
    started = time.perf_counter()
    write_shards(root, count, _batches(data), queries=32, dim=256, kind=kind, generation=1, model="synthetic")
    took = time.perf_counter() - started
    log(f"scaleout: {data.count:,} images written as {count} shard(s) in {took:.0f} s")
    index = ShardedIndex(root, LocalShards(root))
    index.open()
    return index


def _measure(index: ShardedIndex, texts: np.ndarray, similar: list[np.ndarray]) -> dict:
    index.search(texts[:1], 10)  # warm
    text_ms = [_timed(lambda t=t: index.search(t[None], 10)) for t in texts]
    similar_ms = [_timed(lambda q=q: index.similar(q, 10, depth=SIMILAR_DEPTH * 10)) for q in similar]
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda t: index.search(t[None], 10), np.concatenate([texts] * 2)))
    rate = 2 * len(texts) / (time.perf_counter() - started)
    return {"text_p50_ms": _pct(text_ms, 50), "text_p99_ms": _pct(text_ms, 99),
            "similar_p50_ms": _pct(similar_ms, 50), "similar_p99_ms": _pct(similar_ms, 99),
            "searches_per_s": round(rate, 1)}


class _on_ray:
    """The shards as Ray Serve deployments (two replicas each) on a local Ray instance."""

    def __init__(self, root: Path, shards: int) -> None:
        self.root, self.shards = root, shards

    def __enter__(self) -> ShardedIndex:
        import ray
        from ray import serve

        from api.ray.deployments import Shard
        from api.ray.launch import SHARD_CPUS, SHARD_REQUESTS
        from api.ray.remote import RayShards

        ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        options = {"num_replicas": 2, "max_ongoing_requests": SHARD_REQUESTS,
                   "ray_actor_options": {"num_cpus": SHARD_CPUS}}
        apps = [serve.deployment(Shard).options(name=f"shard-{n:03d}", **options).bind(str(self.root), n)
                for n in range(self.shards)]
        handles = [serve.run(app, name=f"shard-{n:03d}", route_prefix=None) for n, app in enumerate(apps)]
        index = ShardedIndex(self.root, RayShards(handles, timeout_s=30))
        index.open()
        return index

    def __exit__(self, *exc) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def _batches(data: Data):
    start = 1
    for chunk in data.chunks():
        yield np.arange(start, start + len(chunk), dtype=np.int64), chunk
        start += len(chunk)


def _some_images(data: Data):
    for chunk in data.chunks():
        yield from chunk[:: max(1, len(chunk) // 16)]


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def _pct(values: list[float], q: int) -> float:
    return round(float(np.percentile(values, q)), 2)
