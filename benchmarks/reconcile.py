"""The `reconcile` part: what a pass of `index_paths` costs over a tree the catalog already
holds, the periodic reconcile a watched folder runs to catch what its watcher missed (issue 32).

Setup (`build`, timed apart and left out of the figures): four shapes pictures indexed for
real with the demo model (captions, OCR, picture hashes), then a tree of distinct small PNGs
(each a 32 px copy of a seed picture with one pixel of its own, so each has its own content
hash and thumbnail), 1,000 a folder, whose rows are written through the collection's own
write path (`Collection.commit`, a batch at a time under `writing`) with their seed's caption,
text and picture hash and its vectors plus a little seeded noise (the compressed vector index
above 20,000 images then trains on distinct vectors). No model call makes them.

Measured (`measure`, in a process of its own so that its peak memory is the pass's):
- the pass: `index_paths` over the tree with the CLI's defaults (captions, OCR, two
  workers), the call a watcher's reconcile makes, wall seconds and the added model calls
  (none: a call fails the part). The first pass of a process is reported apart: before it
  plans anything, `index_paths` sizes its batches (`engine.batch_size`), which builds the
  model parts an index run uses, and imports the OCR reader; a watcher pays that once;
- its parts, each timed alone after the rounds: the walk (`scan.walk`), the plan against the
  catalog (`plan`: the catalog's rows under the root, then per file a size and mtime
  comparison and a thumbnail check), the thumbnail checks alone (`Thumbnails.whole`, a
  file opened per image), the query for images lacking a reading (`listing.unread`) and the
  publish (`Collection.save`, which writes the vector snapshot again);
- the pass again after `touched` files got a new mtime (same content: hashed again and
  their rows touched, still no model call);
- peak RSS of the process over the first pass and over the later ones (`VmHWM`, reset
  before each), and its RSS before them.
"""

from __future__ import annotations

import io
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from demo.shapes import write_collection
from indexer.pipeline import IndexOptions, index_paths
from indexer.plan import bytes_hash, plan
from indexer.scan import walk
from search.collection import SNAPSHOT, Collection
from search.models.engine import Blip2Engine
from search.records import ImageFile, ImageRecord

from .results import size_label

SEEDS, SEED = 4, 3232
SIDE = 32  # px: a small PNG, about 1 KB
PER_FOLDER = 1_000
BATCH = 1_000  # rows a commit


KEYS = {"seconds": "s", "peak_rss_mb": "peak_rss_mb", "model_calls": "model_calls",
        "first_pass_s": "first_pass_s", "first_pass_peak_rss_mb": "first_pass_peak_rss_mb",
        "touched_seconds": "touched_s", "walk_s": "walk_s", "plan_s": "plan_s",
        "thumbnail_checks_s": "thumbnail_checks_s", "publish_s": "publish_s"}


def figures(part: dict) -> dict:
    """The part's figures, keyed by the files it held: `reconcile_s_100k`."""
    size = size_label(part["files"])
    return {f"reconcile_{name}_{size}": part[key] for key, name in KEYS.items()}


def build(folder: Path, files: int, *, log: Callable[[str], None] = print) -> dict:
    """The index at `folder`/index holding `files` unchanged images under `folder`/tree."""
    engine = Blip2Engine.load("demo", device="cpu")
    seeds = folder / "seeds"
    write_collection(seeds, SEED, SEEDS)
    collection = Collection.open(folder / "index", create=True)
    try:
        started = time.perf_counter()
        summary = index_paths(collection, engine, [seeds], IndexOptions())
        seed_s = time.perf_counter() - started
        records = sorted(collection.catalog.under(str(seeds.resolve())).values(), key=lambda r: r.path)
        written, rows_s = _fill(collection, folder / "tree", files, records)
    finally:
        collection.close()
    out = {"files": files, "setup_seed_images": len(records), "setup_seed_model_calls": summary.model_calls,
           "setup_seed_s": round(seed_s, 1), "setup_files_s": round(written, 1),
           "setup_rows_s": round(rows_s, 1),
           "catalog_bytes": sum(p.stat().st_size for p in (folder / "index").glob("catalog.db*"))}
    log(f"reconcile setup: {out}")
    return out


def _fill(collection: Collection, tree: Path, files: int, seeds: list[ImageRecord]) -> tuple[float, float]:
    """Write the tree's files and commit their rows, a batch at a time: (seconds writing
    files, seconds committing rows)."""
    root = str(tree.resolve())
    pixels = [np.asarray(Image.open(seed.path).convert("RGB").resize((SIDE, SIDE))) for seed in seeds]
    vectors = [collection.vectors_of(seed.id).astype(np.float32) for seed in seeds]
    thumbnails = [collection.thumbnails.path(seed.content_hash).read_bytes() for seed in seeds]
    rng = np.random.default_rng(SEED)
    writing = committing = 0.0
    with collection.writing():
        for start in range(0, files, BATCH):
            began = time.perf_counter()
            batch = [_write(tree, i, pixels[i % len(seeds)]) for i in range(start, min(start + BATCH, files))]
            noisy = np.stack([vectors[i % len(seeds)] for i in range(start, start + len(batch))])
            noisy += rng.normal(0, 0.05, noisy.shape).astype(np.float32)
            noisy /= np.linalg.norm(noisy, axis=-1, keepdims=True)  # (B, Q, D), each query vector unit
            rows = [_row(path, data, root, seeds[i % len(seeds)], noisy[i - start].astype(np.float16),
                         thumbnails[i % len(seeds)])
                    for i, (path, data) in enumerate(batch, start)]
            committed = time.perf_counter()
            collection.commit(rows)
            writing, committing = writing + committed - began, committing + time.perf_counter() - committed
        began = time.perf_counter()
        collection.save()
        committing += time.perf_counter() - began
    return writing, committing


def _write(tree: Path, i: int, pixels: np.ndarray) -> tuple[Path, bytes]:
    """File `i`: its seed's picture with pixel (0, 0) set to `i` in base 256."""
    picture = pixels.copy()
    picture[0, 0] = (i >> 16 & 255, i >> 8 & 255, i & 255)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    path = tree / f"{i // PER_FOLDER:03d}" / f"{i:06d}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path, buffer.getvalue()


def _row(path: Path, data: bytes, root: str, seed: ImageRecord, vectors: np.ndarray,
         thumbnail: bytes) -> ImageFile:
    """The row an index run would have written for the file: its seed's results."""
    stat = path.stat()  # what the walk will see
    return ImageFile(path=str(path.resolve()), size=stat.st_size, mtime=stat.st_mtime, root=root,
                     content_hash=bytes_hash(data), width=SIDE, height=SIDE, caption=seed.caption,
                     text=seed.text if seed.text is not None else "", picture_hash=seed.picture_hash,
                     vectors=vectors, thumbnail=thumbnail)


def measure(folder: Path, *, touched: int, rounds: int, log: Callable[[str], None] = print) -> dict:
    """The reconcile's figures over the index `build` made at `folder`: a first pass, as a
    watcher's first (it builds the model parts an index run uses: `first_pass_s`), then
    `rounds` more, as its later ones (`seconds`: the best)."""
    engine = Blip2Engine.load("demo", device="cpu")
    root = (folder / "tree").resolve()
    started = time.perf_counter()
    collection = Collection.open(folder / "index")
    try:
        out = {"open_s": round(time.perf_counter() - started, 2), "rss_before_passes_mb": _rss("VmRSS")}
        _reset_peak()
        files, first = _pass(collection, engine, root)
        out |= {"unchanged": files, "first_pass_s": round(first, 2), "first_pass_peak_rss_mb": _rss("VmHWM"),
                "rss_after_first_pass_mb": _rss("VmRSS")}
        _reset_peak()
        seconds = [round(_pass(collection, engine, root)[1], 2) for _ in range(rounds)]
        out |= {"seconds": min(seconds), "seconds_each": seconds, "peak_rss_mb": _rss("VmHWM")}
        log(f"reconcile: {files:,} unchanged files, first pass {out['first_pass_s']} s, then {seconds} s; "
            f"peak RSS {out['first_pass_peak_rss_mb']} then {out['peak_rss_mb']} MB")
        out |= _parts(collection, root)
        log(f"reconcile parts: {out}")
        out["touched"] = _touch(root, touched, files)
        out["touched_seconds"] = round(_pass(collection, engine, root)[1], 2)
        out["model_calls"] = engine.model_calls
        out["snapshot_bytes"] = sum(p.stat().st_size for p in (folder / "index").glob(f"{SNAPSHOT}*"))
    finally:
        collection.close()
    log(f"reconcile with {touched:,} touched: {out['touched_seconds']} s; model calls {out['model_calls']}")
    return out


def _pass(collection: Collection, engine: Blip2Engine, root: Path) -> tuple[int, float]:
    """One reconcile, checked: every file unchanged (or touched: same content), no model
    call. Returns (the files seen, seconds)."""
    calls = engine.model_calls
    started = time.perf_counter()
    summary = index_paths(collection, engine, [root], IndexOptions())
    took = time.perf_counter() - started
    if engine.model_calls != calls or summary.model_calls:
        raise RuntimeError(f"the reconcile of unchanged files made {engine.model_calls - calls} model calls")
    changes = (summary.added, summary.updated, summary.moved, summary.removed, summary.failed, summary.text)
    if any(changes):
        raise RuntimeError(f"the reconcile of unchanged files changed the catalog: {summary}")
    return summary.unchanged, took


def _parts(collection: Collection, root: Path) -> dict:
    """The parts of a pass, each timed alone (seconds)."""
    timed: dict = {}

    def clock(name: str, work: Callable[[], object]):
        started = time.perf_counter()
        result = work()
        timed[name] = round(time.perf_counter() - started, 2)
        return result

    files = clock("walk_s", lambda: list(walk(root)))
    records = clock("catalog_rows_s", lambda: collection.catalog.under(str(root)))
    clock("plan_s", lambda: plan(collection, str(root), files))
    hashes = [record.content_hash for record in records.values()]
    clock("thumbnail_checks_s", lambda: [collection.thumbnails.whole(h) for h in hashes])
    clock("unread_query_s", lambda: collection.catalog.listing.unread(text=True, picture=True))
    with collection.writing():
        clock("publish_s", collection.save)
    return timed


def _touch(root: Path, count: int, files: int) -> int:
    """A new mtime (a minute later) for `count` files spread over the tree; their content
    stays. Returns how many."""
    paths = sorted(root.rglob("*.png"))[:: max(1, files // count)][:count]
    for path in paths:
        stat = path.stat()
        os.utime(path, (stat.st_atime, stat.st_mtime + 60))
    return len(paths)


def _reset_peak() -> None:
    """Start this process's peak RSS (`VmHWM`) again from its current RSS (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the peak is the process's own, setup included


def _rss(field: str) -> int:
    """MB of this process's `VmRSS` or `VmHWM` (Linux), else its peak (`ru_maxrss`)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
