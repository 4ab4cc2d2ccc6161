"""Reading the text in images at index time: seconds an image for OCR alone, and the share of
indexing time it adds at the real model size.

One folder of rendered words (fonts, sizes from 20 px, plain, gradient, noisy and busy
backgrounds, pictures up to 1280 px, JPEG and PNG) is indexed into fresh collections by
`index_paths` with the CLI's defaults (two decoding workers, the batch sized to memory), at
the real depths with random weights and the product's default precision: with OCR and with
`--no-ocr`, alternating, `rounds` times each; each setting keeps its fastest run. The share is
(with − without) / with. OCR alone is `TextReader.read` on each decoded picture in this
process, after one warm-up read. The dense page is the reader's worst case: a heading over 48
lines of small print (`tests.support.words.page`), timed alone (the fastest of three reads),
with the lines it reads under OCR's bound (at most 32 boxes, 240 units of recogniser input)
and the lines drawn.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from search.collection import Collection
from search.media.images import open_image
from search.media.ocr import TextReader
from search.models import generation
from search.models.engine import Blip2Engine
from tests.support.words import page, render

from . import realsize

SEED = 4711


def reading(paths: list[Path]) -> dict:
    """OCR alone: seconds an image, and the words read."""
    reader = TextReader()
    pictures = [open_image(path) for path in paths]
    reader.read(pictures[0])  # the models load on the first read
    started = time.perf_counter()
    texts = [reader.read(picture) for picture in pictures]
    seconds = time.perf_counter() - started
    return {"images": len(pictures), "seconds_per_image": round(seconds / len(pictures), 3),
            "words_read": sum(len(text.split()) for text in texts)}


def dense_page(folder: Path) -> dict:
    """OCR alone on a page dense with text: seconds (the fastest of three reads, after a
    warm-up), and lines read of lines drawn."""
    drawn = page(folder / "dense_page.png", lines=48, seed=SEED)
    reader = TextReader()
    picture = open_image(folder / "dense_page.png")
    reader.read(picture)
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        text = reader.read(picture)
        seconds.append(time.perf_counter() - started)
    return {"seconds": round(min(seconds), 3), "lines_read": len(text.splitlines()),
            "lines_drawn": len(drawn)}


def indexed(engine: Blip2Engine, folder: Path, ocr: bool) -> float:
    """Seconds `index_paths` takes over `folder` into a fresh collection."""
    from indexer.pipeline import IndexOptions, index_paths  # the CLI's own indexer

    with tempfile.TemporaryDirectory() as index:
        collection = Collection.open(Path(index), create=True)
        try:
            started = time.perf_counter()
            summary = index_paths(collection, engine, [folder], IndexOptions(ocr=ocr))
            seconds = time.perf_counter() - started
        finally:
            collection.close()
    assert summary.added > 0 and summary.text == (summary.added if ocr else 0)
    return seconds


def run(depth: realsize.Depth, *, images: int, new_tokens: int, default_dtype: str | None, rounds: int = 2,
        log: Callable[[str], None] = print) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "images"
        paths = [drawn.path for drawn in render(folder, images, SEED)]
        report = {"ocr_alone": reading(paths), "ocr_dense_page": dense_page(Path(scratch))}
        log(f"ocr alone: {report['ocr_alone']}; a dense page: {report['ocr_dense_page']}")
        engine = realsize.default_engine(depth, dtype=default_dtype, name="real-size-default")
        default_dtype = engine.precision.dtype
        engine.caption_decoding = generation.Decoding(num_beams=5, max_new_tokens=new_tokens,
                                                      min_new_tokens=new_tokens)
        engine.prepare(engine.index_parts())  # built before either run is timed, not in the first
        runs: dict[str, list[float]] = {"without": [], "with": []}
        for ocr in (False, True) * rounds:
            runs["with" if ocr else "without"].append(indexed(engine, folder, ocr))
            log(f"index {images} images, ocr={ocr}: {runs['with' if ocr else 'without'][-1]:.1f} s")
        del engine
        gc.collect()
    without, with_ocr = min(runs["without"]), min(runs["with"])
    return report | {
        "depth": depth.__dict__, "images": images, "new_tokens": new_tokens, "default_dtype": default_dtype,
        "index_seconds": {name: [round(s, 1) for s in seconds] for name, seconds in runs.items()},
        "index_seconds_per_image_without_ocr": round(without / images, 3),
        "index_seconds_per_image_with_ocr": round(with_ocr / images, 3),
        "ocr_share_of_index_time": round((with_ocr - without) / with_ocr, 3),
    }
