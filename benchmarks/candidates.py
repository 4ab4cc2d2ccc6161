"""How many candidates the compressed index must re-score when clusters are large.

`python -m benchmarks.candidates`: 100,000 clustered images of 32 x 256 vectors held in
memory, but with 100 clusters instead of the query part's 1,024, so a cluster holds about
1,000 images, as it does at 1,000,000 images there. The real compressed `VectorIndex`
(PQ fast-scan, its candidates re-scored exactly) is searched with several candidate
counts; recall@10 is against exact max-sim. Not part of `make bench`: a sizing experiment.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from search import runtime
from search.query import scoring
from search.store.vectors import MemoryIndex
from tests.support.vectors import in_memory

from .query import Data


def main(images: int = 100_000, clusters: int = 100, probes: int = 50, k: int = 10) -> int:
    runtime.configure()
    data = Data("clustered", images, 32, 256, clusters=clusters)
    vectors = np.concatenate(list(data.chunks()))
    queries = data.probes(probes)
    truth = np.argsort(-np.einsum("nqd,pd->pnq", vectors, queries).max(axis=2), axis=1)[:, :k]
    read = in_memory(dict(enumerate(vectors)))
    index = MemoryIndex(32, 256, "compressed")
    index.train(vectors[:: max(1, images // 8192)], population=images)
    index.add(np.arange(images), vectors)
    for per_hit in (32, 64, 128):
        index.per_hit = per_hit
        started = time.perf_counter()
        firsts = index.search(queries, k)
        found = [scoring.ranked(first, text, k, read) for first, text in zip(firsts, queries, strict=True)]
        ms = (time.perf_counter() - started) / probes * 1000
        hits = [len({i for i, _ in f} & set(t.tolist())) for f, t in zip(found, truth, strict=True)]
        recall = np.mean(hits) / k
        print(f"{per_hit:4d} candidates a hit: recall@{k} {recall:.3f}, {ms:.1f} ms a query "
              "(vectors in memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
