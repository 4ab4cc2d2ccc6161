"""A library of demo-world pictures indexed by the real pipeline with the shipped demo model,
and settings for a server over it: what the album tests over HTTP and in the browser start
from (each then indexes more pictures into it)."""

from __future__ import annotations

from pathlib import Path

from demo.shapes import write_collection


def demo_library(root: Path, count: int, seed: int = 5):
    """`count` pictures in ROOT/photos/old, indexed into ROOT/index; the server's settings."""
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection
    from search.config import load_settings
    from search.models import Blip2Engine
    from tests.support.engines import FLOAT32

    write_collection(root / "photos" / "old", seed=seed, count=count)
    collection = Collection.open(root / "index", create=True)
    try:
        engine = Blip2Engine.load("demo", device="cpu", precision=FLOAT32)
        index_paths(collection, engine, [root / "photos"], IndexOptions(workers=0, ocr=False))
    finally:
        collection.close()
    return load_settings(index=root / "index", model="demo", workers=0, device="cpu")
