"""The match head and questions at real size, with stored features and without.

One collection of shapes images is indexed at real BLIP-2 size (random weights, captions off)
without stored features; `Searcher.match` of 20 hits then recomputes each image's encoder
pass, as a rerank did before. The same collection is indexed again with `--keep-features`
(the encoder alone runs, for the images that lack them), and the same 20 are matched from
the stored features: the Q-Former alone. The probabilities of the two are compared, and one
question is asked a few times with the stored features. The precisions are the product's
CPU defaults: `auto` for the encoder and Q-Formers, int8 weights for the language model.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from demo.shapes import write_collection
from indexer.pipeline import IndexOptions, index_paths
from search.collection import Collection
from search.models.engine import Blip2Engine
from search.query.searcher import Searcher, SearchOptions

from . import realsize

QUERY = "a red circle on a white background"
QUESTION = "what colour is the circle?"


def run(depth: realsize.Depth, *, images: int = 20, asks: int = 3, dtype: str | None = None,
        log: Callable[[str], None] = lambda line: None) -> dict:
    engine = realsize.default_engine(depth, dtype=dtype)  # the CPU default per stage, as `load` does
    dtype = engine.precision.dtype
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        write_collection(folder, seed=99, count=images)
        collection = Collection.open(Path(scratch) / "index", create=True)
        try:
            return _measure(engine, collection, folder, images, asks, dtype, log)
        finally:
            collection.close()


def _measure(engine: Blip2Engine, collection: Collection, folder: Path, images: int, asks: int, dtype: str,
             log: Callable[[str], None]) -> dict:
    options = IndexOptions(captions=False, workers=0, batch_size=8)
    index_paths(collection, engine, [folder], options)
    searcher = Searcher(collection, engine)
    ids = sorted(collection.catalog.get_many(range(1, images + 1)))
    recompute_s, recomputed = _timed(lambda: searcher.questions.match(QUERY, ids))
    log(f"features: rerank of {len(ids)} recomputing the encoder: {recompute_s:.1f} s")
    dated = SearchOptions(k=len(ids), sort="newest", candidates=len(ids))  # every image a candidate
    dated_recompute_s, _ = _timed(lambda: searcher.search(QUERY, dated))
    summary = index_paths(collection, engine, [folder], IndexOptions(captions=False, workers=0, batch_size=8,
                                                                    keep_features=True))
    stats = collection.stats()
    features_s, stored = _timed(lambda: searcher.questions.match(QUERY, ids))
    log(f"features: rerank of {len(ids)} from stored features: {features_s:.2f} s")
    dated_features_s, _ = _timed(lambda: searcher.search(QUERY, dated))
    log(f"features: newest first over {len(ids)} candidates: {dated_features_s:.2f} s with features, "
        f"{dated_recompute_s:.1f} s without")
    diff = max(abs(recomputed[i] - stored[i]) for i in ids)
    ask_s = [_timed(lambda: searcher.questions.ask(ids[0], QUESTION))[0] for _ in range(asks)]
    log(f"features: ask p50 {statistics.median(ask_s):.2f} s")
    return {
        "dtype": dtype, "images": len(ids), "features_gained": summary.features,
        "rerank20_ms_realsize_cpu_recompute": round(recompute_s * 1000),
        "rerank20_ms_realsize_cpu_features": round(features_s * 1000),
        "rerank_speedup_features": round(recompute_s / features_s, 1),
        "date_order20_ms_realsize_cpu_features": round(dated_features_s * 1000),
        "date_order20_ms_realsize_cpu_recompute": round(dated_recompute_s * 1000),
        "match_max_abs_diff_features": round(diff, 5),
        "match_range": [round(min(recomputed.values()), 4), round(max(recomputed.values()), 4)],
        "ask_p50_ms_realsize_cpu": round(statistics.median(ask_s) * 1000),
        "disk_bytes_per_image_features": stats.feature_bytes // max(stats.features, 1),
    }


def _timed(call):
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result
