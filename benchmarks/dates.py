"""Date order over the match head's cutoff on the demo model: `sort=newest` at the default 200
candidates, on a collection of shapes images with EXIF dates, with stored features and
without (the match head then reads and encodes each candidate's file again).

The collection is indexed once with `--keep-features`; "without" is the same searcher asked
through an engine that finds no stored features under its key, as an index built without the
option has none.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from demo.shapes import generate
from indexer.pipeline import IndexOptions, index_paths
from search.collection import Collection
from search.config import Precision
from search.models.engine import Blip2Engine
from search.query.searcher import Searcher, SearchOptions

QUERIES = ("a red circle", "a blue square", "a green triangle", "a yellow star", "an orange circle",
           "a purple square", "a white star", "a black triangle")


class WithoutFeatures:
    """The engine, finding no stored features (as for an index built without them)."""

    def __init__(self, engine: Blip2Engine) -> None:
        self._engine = engine

    def feature_key(self, side: str) -> str:
        return "none"

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


def write_dated(folder: Path, count: int, seed: int = 5150) -> None:
    """`count` shapes images, each with an EXIF date on its own day."""
    folder.mkdir(parents=True, exist_ok=True)
    days = list(range(count))
    random.Random(seed).shuffle(days)
    for i, sample in enumerate(generate(seed, count)):
        exif = Image.Exif()
        exif[0x0132] = (datetime(2000, 1, 1) + timedelta(days=days[i])).strftime("%Y:%m:%d %H:%M:%S")
        sample.image.save(folder / f"{i:05d}.png", exif=exif)


def run(images: int = 10_000, *, queries: int = 8, log: Callable[[str], None] = lambda line: None) -> dict:
    engine = Blip2Engine.load("demo", device="cpu", precision=Precision(encoder="same"))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        write_dated(folder, images)
        collection = Collection.open(Path(scratch) / "index", create=True)
        try:
            started = time.perf_counter()
            index_paths(collection, engine, [folder], IndexOptions(captions=False, keep_features=True))
            seconds = time.perf_counter() - started
            log(f"dates: {images:,} demo images indexed with features in {seconds:.0f} s")
            result = {"images": collection.indexed, "candidates": 200}
            for name, searcher in (("features", Searcher(collection, engine)),
                                   ("files", Searcher(collection, WithoutFeatures(engine)))):
                times, kept = [], []
                for i in range(queries + 1):
                    started = time.perf_counter()
                    hits = searcher.search(QUERIES[i % len(QUERIES)], SearchOptions(k=100, sort="newest"))
                    if i:  # the first warms up
                        times.append(time.perf_counter() - started)
                        kept.append(len(hits))
                p50 = round(statistics.median(times) * 1000)
                result |= {f"date_order_p50_ms_demo_{name}": p50, f"date_order_hits_{name}": kept}
                log(f"dates: newest first over 200 candidates, {name}: p50 {p50} ms")
            return result
        finally:
            collection.close()
