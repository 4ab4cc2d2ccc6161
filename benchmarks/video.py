"""The `video` part: what videos cost.

- decoding: `load_video` on a synthetic minute of 720p and of 1080p H.264 (x264's default
  keyframes, a cut every 2 to 6 s: `video_decode`), seconds a minute of video, best of three;
- moments a minute it finds there;
- indexing: `index_paths` with the CLI's defaults (two decoding workers, captions and OCR)
  over one minute of 720p, seconds a minute of video, at the demo model and at real size
  (random weights, `realsize.default_engine`);
- bytes a moment: on disk (its stored float16 vectors and its thumbnail, the parts that grow
  with moments; the whole index folder is reported beside) and in RAM (the exact vector
  index's float32 rows).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from search.collection import Collection
from search.models.engine import Blip2Engine

from . import realsize, video_decode


def run(depth: realsize.Depth, *, seconds: float = 60.0, log: Callable[[str], None] = print) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for height in (720, 1080):
            found = video_decode.decode_seconds_per_minute(height, seconds=seconds, scratch=scratch)
            out[f"decode_s_per_min_{height}p"] = found["decode_s_per_min"]
            out[f"moments_per_min_{height}p"] = found["moments_per_min"]
            log(f"decode {height}p: {found}")
        folder = scratch / "minute"
        folder.mkdir()
        video_decode.write_synthetic(folder / "minute.mp4", 720, seconds=seconds)
        engines = {"demo": lambda: Blip2Engine.load("demo", device="cpu"),
                   "real_size": lambda: realsize.default_engine(depth)}
        for name, load in engines.items():
            figures = indexed(load(), folder, scratch / f"index-{name}", seconds)
            out |= {f"{key}_{name}": value for key, value in figures.items()}
            log(f"index at {name}: {figures}")
    return out


def indexed(engine: Blip2Engine, folder: Path, index: Path, seconds: float) -> dict:
    """Seconds a minute of video `index_paths` takes over `folder` into a fresh collection,
    and the bytes a moment takes on disk and in RAM there."""
    from indexer.pipeline import IndexOptions, index_paths  # the CLI's own indexer

    collection = Collection.open(index, create=True)
    try:
        start = time.perf_counter()
        index_paths(collection, engine, [folder], IndexOptions())
        took = time.perf_counter() - start
        stats = collection.stats()
        folder_bytes = sum(path.stat().st_size for path in index.rglob("*") if path.is_file())
        thumbnails = [path.stat().st_size for path in (index / "thumbnails").rglob("*.webp")]
        vectors = stats.queries_per_image * stats.dim
    finally:
        collection.close()
    return {"index_s_per_min": round(took / seconds * 60, 2), "moments": stats.moments,
            "bytes_per_moment_disk": round(vectors * 2 + sum(thumbnails) / max(len(thumbnails), 1)),
            "bytes_per_moment_ram": vectors * 4, "index_folder_bytes": folder_bytes}
