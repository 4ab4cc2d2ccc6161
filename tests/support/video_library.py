"""A small library of generated videos and images, indexed with the shipped demo model by the
real pipeline, and settings for an app over it: what the API, CLI and page tests of videos read."""

from __future__ import annotations

from pathlib import Path

from tests.support.corpus import write_corpus
from tests.support.videos import corpus


def video_library(root: Path) -> dict:
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection
    from search.config import load_settings
    from search.models import Blip2Engine
    from tests.support.engines import FLOAT32

    clips = corpus(root / "library" / "videos", seed=7, count=3)
    write_corpus(root / "library" / "images", 4)
    engine = Blip2Engine.load("demo", device="cpu", precision=FLOAT32)
    collection = Collection.open(root / "index", create=True)
    index_paths(collection, engine, [root / "library"], IndexOptions(workers=0, ocr=False))
    ids = {clip.path.name: collection.catalog.at_path(str(clip.path)).id for clip in clips}
    image = collection.catalog.at_path(str(root / "library" / "images" / "img0000.png")).id
    collection.close()
    settings = load_settings(index=root / "index", model="demo", workers=0, device="cpu")
    return {"root": root, "clips": clips, "ids": ids, "image": image, "settings": settings}
