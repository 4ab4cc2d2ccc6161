"""Ten million vectors in a segmented compressed index: recall@10 against exact, latency, RAM.

312,500 clustered images of 32 x 256 vectors (10,000,000 vectors) are written to a real
catalog as the query part writes its collections, the exact top 10 of every probe computed
on the way. The compressed first stage is trained on an even sample of the catalog's
vectors and filled segment by segment (`benchmarks.segments`, 2,500,000 vectors a
segment, one in memory at a time), then opened as one `SegmentedIndex`. Timed: text queries end to end (the
real-size text encoder, then the search of a data-like vector with its candidates
re-scored exactly from the catalog), and the search alone on the probes; recall@10 on the
probes; the resident memory the opened shards take, in a fresh process.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from search.collection import IndexPolicy
from search.query import scoring
from search.store.catalog import Catalog, database_url

from .query import QUERIES, Data, _ms, fresh_process_ram
from .query import build as write_catalog
from .segments import SegmentedIndex
from .segments import build as build_segments


def run(engine, *, images: int = 312_500, images_per_segment: int = 78_125, probes: int = 100,
        queries: int = 200, k: int = 10, scratch: Path | None = None, log=print) -> dict:
    data = Data("clustered", images, 32, 256)
    folder = Path(tempfile.mkdtemp(prefix="bench-large-", dir=scratch))
    try:
        started = time.perf_counter()
        probe_vectors = data.probes(probes)
        truth = write_catalog(folder, data, probe_vectors, k)
        log(f"{images:,} images ({images * 32:,} vectors) written in {time.perf_counter() - started:.0f} s")
        catalog = Catalog.open(database_url(folder))  # the catalog alone: no single index built
        shape = (32, 256)
        started = time.perf_counter()
        stride = max(1, images // IndexPolicy().training_sample)
        sample = np.concatenate([v[::stride].copy() for _, v in catalog.vectors.iterate(shape)])
        paths = build_segments(folder / "segments", sample, images, catalog.vectors.iterate(shape),
                               images_per_segment)
        built = time.perf_counter() - started
        log(f"{len(paths)} segments built in {built:.0f} s")
        index = SegmentedIndex.open(folder / "segments", 32, 256)

        def search(texts: np.ndarray) -> list[list[tuple[int, float]]]:
            """The first stage, its candidates re-scored exactly from the catalog's vectors."""
            read = lambda ids, each: catalog.vectors.many(ids, shape, each)  # noqa: E731
            texts = np.atleast_2d(texts)
            return [scoring.ranked(first, text, k, read)
                    for first, text in zip(index.search(texts, k), texts, strict=True)]

        query_vectors = data.probes(queries, stream=2)
        total, search_only = [], []
        for i in range(queries):
            began = time.perf_counter()
            engine.embed_texts([QUERIES[i % len(QUERIES)]])  # its time is the query's; its vector is not
            search(query_vectors[i])
            total.append(time.perf_counter() - began)
        for probe in probe_vectors:
            began = time.perf_counter()
            search(probe)
            search_only.append(time.perf_counter() - began)
        found = [[i for i, _ in hits] for hits in search(probe_vectors)]
        recall = np.mean([len(set(f) & set(t.tolist())) / k for f, t in zip(found, truth.text, strict=True)])
        catalog.close()
        return {
            "images": images, "vectors": images * 32, "segments": len(paths), "build_s": round(built),
            "query_p50_ms": _ms(np.percentile(total, 50)), "query_p99_ms": _ms(np.percentile(total, 99)),
            "search_p50_ms": _ms(np.percentile(search_only, 50)),
            "search_p99_ms": _ms(np.percentile(search_only, 99)),
            f"recall_at_{k}": round(float(recall), 4),
            "bytes_per_image_ram": round(_segments_ram(folder / "segments") / images),
            "bytes_per_image_segments_disk": round(sum(p.stat().st_size for p in paths) / images),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _segments_ram(folder: Path) -> int:
    return fresh_process_ram("from pathlib import Path\nfrom benchmarks.segments import SegmentedIndex",
                             "index = SegmentedIndex.open(Path(sys.argv[1]), 32, 256)", folder)
