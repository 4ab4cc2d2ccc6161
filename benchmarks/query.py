"""Query latency, recall and memory at 10,000 to 1,000,000 images, on synthetic vectors.

The vectors go through the real catalog (SQLite, float16 blobs) and the real vector index,
which the collection builds from the catalog when it opens, with no model. Two kinds:
uniform random (every direction alike: the worst case for an approximate index) and
clustered (a mixture of Gaussians: images drawn around 1,024 centres, each query vector
the centre plus noise about 0.7 of its length, closer to real embeddings). Probes for
recall come from the same distribution. Latency is for a text query end to end, as the
search command and the API run it: the real text encoder runs on the text, then the search
(and the catalog lookups of the hits) runs on a query vector drawn like the probes. The
encoder's own vector would not do: with random weights it falls far from every cluster,
where the compressed index's candidates are few images that every such query shares, so
their stored vectors are always in the page cache; a query inside a cluster re-scores
that cluster's images, read from disk. That cheaper latency is reported too
(`random_text_query_p50_ms`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from search.collection import Collection
from search.query.searcher import Searcher, SearchOptions
from search.records import ImageFile, ModelInfo
from search.store.catalog import Catalog, database_url

CLUSTERS = 1024
CHUNK = 8192
QUERY_COUNT = 200  # timed queries a size and mode
QUERIES = [f"a {c} {s} on a {b} background" for c in ("red", "small", "old", "wet")
           for s in ("dog", "car", "house", "tree", "boat")
           for b in ("beach", "street", "snowy", "dark", "green")]


@dataclass
class Data:
    kind: str  # uniform | clustered
    count: int
    queries: int
    dim: int
    seed: int = 0
    clusters: int = CLUSTERS

    def chunks(self) -> Iterator[np.ndarray]:
        """(n, Q, D) float32 unit vectors, already rounded to float16 as the catalog stores them."""
        rng = np.random.default_rng(self.seed)
        centres = torch.from_numpy(self._centres(rng))
        noise_source = torch.Generator().manual_seed(self.seed)  # torch draws normals on every core
        for start in range(0, self.count, CHUNK):
            size = min(CHUNK, self.count - start)
            noise = torch.randn((size, self.queries, self.dim), generator=noise_source)
            if self.kind == "clustered":
                noise = centres[rng.integers(0, self.clusters, size)][:, None, :] + noise * self._sigma
            yield torch.nn.functional.normalize(noise, dim=-1).half().float().numpy()

    def probes(self, count: int, stream: int = 1) -> np.ndarray:
        rng = np.random.default_rng(self.seed + stream)
        centres = self._centres(np.random.default_rng(self.seed))  # the data's own centres
        noise = rng.standard_normal((count, self.dim), dtype=np.float32)
        if self.kind == "clustered":
            noise = centres[rng.integers(0, self.clusters, count)] + noise * self._sigma
        return _unit(noise)

    def _centres(self, rng: np.random.Generator) -> np.ndarray:
        """The cluster centres: the first draw of the data's generator."""
        return _unit(rng.standard_normal((self.clusters, self.dim), dtype=np.float32))

    @property
    def _sigma(self) -> float:
        return 0.7 / np.sqrt(self.dim)


class DataLikeQueries:
    """The engine as a `Searcher` sees it, except that after the real text encoder has run on
    a text, the vector returned is the next of `vectors` (see the module's docstring)."""

    def __init__(self, engine, vectors: np.ndarray) -> None:
        self.engine, self.vectors, self.served = engine, vectors, 0

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        self.engine.embed_texts(texts)  # the encoder's time is part of the query's
        picked = [self.vectors[(self.served + i) % len(self.vectors)] for i in range(len(texts))]
        self.served += len(texts)
        return np.stack(picked).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class TopK:
    """The best k (id, score) of each of several probes, kept while chunks of scores stream by."""

    def __init__(self, probes: int, k: int) -> None:
        self.k = k
        self.ids = np.full((probes, 0), -1, dtype=np.int64)
        self.scores = np.zeros((probes, 0), dtype=np.float32)

    def add(self, ids: np.ndarray, scores: np.ndarray) -> None:
        """`scores`: (probes, n) for the n images `ids`."""
        self.ids = np.concatenate([self.ids, np.broadcast_to(ids, scores.shape)], axis=1)
        self.scores = np.concatenate([self.scores, scores.astype(np.float32)], axis=1)
        keep = np.lexsort((self.ids, -self.scores), axis=1)[:, : self.k]
        self.ids = np.take_along_axis(self.ids, keep, 1)
        self.scores = np.take_along_axis(self.scores, keep, 1)


@dataclass
class Truth:
    text: np.ndarray  # (probes, k) exact max-sim top-k ids of the text probes
    similar_ids: np.ndarray  # (s,) images of the collection used as similar-image queries
    similar: np.ndarray  # (s, k) their exact mean-of-max top-k, themselves left out


def build(folder: Path, data: Data, probes: np.ndarray, k: int = 10, similar_probes: int = 20) -> Truth:
    """Write `data` into a new collection's catalog; return the exact top-k image ids per text
    probe (max-sim over every stored vector) and per similar-image probe (mean over the
    probe's vectors of the max cosine; the first `similar_probes` images), computed on the way."""
    collection = Collection.open(folder, create=True)
    collection.bind_model(ModelInfo("synthetic", data.queries, data.dim))
    collection.close()
    # Straight into the catalog: the vector index is built by the next open, from the
    # catalog alone (a collection's commit would hold every vector in memory meanwhile).
    catalog = Catalog.open(database_url(folder))
    text, similar = TopK(len(probes), k), TopK(similar_probes, k + 1)
    query_ids, query_vectors = None, None
    done = 0
    for vectors in data.chunks():
        rows = [ImageFile(path=f"/synthetic/{done + i}.jpg", size=1, mtime=0.0, root="/synthetic",
                          content_hash=f"{done + i:x}", vectors=vectors[i].astype(np.float16))
                for i in range(len(vectors))]
        ids = np.array(catalog.write(rows), dtype=np.int64)
        if query_ids is None:
            query_ids, query_vectors = ids[:similar_probes], vectors[:similar_probes]
        scores = (vectors.reshape(-1, data.dim) @ probes.T).reshape(len(vectors), data.queries, -1)
        text.add(ids, scores.max(axis=1).T)  # (probes, n): max-sim
        flat = vectors.reshape(-1, data.dim)
        similar.add(ids, np.stack([_mean_max(flat, query, len(vectors)) for query in query_vectors]))
        done += len(vectors)
    catalog.close()
    own = similar.ids != query_ids[:, None]
    found = [row[keep][:k] for row, keep in zip(similar.ids, own, strict=True)]
    return Truth(text.ids, query_ids, np.stack(found))


def _mean_max(flat: np.ndarray, query: np.ndarray, images: int) -> np.ndarray:
    """(n,) `similar`'s score of n images' (n * Q, D) vectors against one (Q, D) query."""
    return (flat @ query.T).reshape(images, -1, len(query)).max(axis=1).mean(axis=1)


def measure(folder: Path, index_type: str, engine, probes: np.ndarray, truth: Truth,
            query_vectors: np.ndarray, queries: int = 200, k: int = 10) -> dict:
    """Open the collection as `index_type` (rebuilding from the catalog), then time text
    queries end to end (searching `query_vectors`, one per query, drawn like the data), the
    same with the encoder's own vectors, and the vector search alone on the probes, and
    measure recall@k against exact."""
    started = time.perf_counter()
    collection = Collection.open(folder)
    collection.set_index_type(index_type)  # rebuilds (and saves) when the kind changes
    opened = time.perf_counter() - started
    warm_up = 5
    data_like = Searcher(collection, DataLikeQueries(engine, query_vectors))
    random_text = Searcher(collection, engine)
    total, random_total, search_only = [], [], []
    for i in range(warm_up + queries):
        text = QUERIES[i % len(QUERIES)]
        for searcher, times in ((data_like, total), (random_text, random_total)):
            started = time.perf_counter()
            searcher.search(text, SearchOptions(k=k))
            if i >= warm_up:
                times.append(time.perf_counter() - started)
    for probe in probes:
        started = time.perf_counter()
        random_text.nearest(probe[None], k)  # the first stage and its exact re-scoring
        search_only.append(time.perf_counter() - started)
    found = [[i for i, _ in hits] for hits in random_text.nearest(probes, k)]
    recall = np.mean([len(set(f) & set(t.tolist())) / k for f, t in zip(found, truth.text, strict=True)])
    similar_times, similar_found = [], []
    for image_id in truth.similar_ids.tolist():  # images of the collection, by id: left out of their results
        started = time.perf_counter()
        hits = random_text.similar.find(image_id=image_id, k=k)
        similar_times.append(time.perf_counter() - started)
        similar_found.append([hit.id for hit in hits])
    similar_recall = np.mean([len(set(f) & set(t.tolist())) / k
                              for f, t in zip(similar_found, truth.similar, strict=True)])
    images = collection.indexed
    disk = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    result = {
        "index": collection.stats().vector_index, "images": images, "open_s": round(opened, 2),
        "query_p50_ms": _ms(np.percentile(total, 50)), "query_p99_ms": _ms(np.percentile(total, 99)),
        "random_text_query_p50_ms": _ms(np.percentile(random_total, 50)),
        "search_p50_ms": _ms(np.percentile(search_only, 50)),
        "search_p99_ms": _ms(np.percentile(search_only, 99)),
        f"recall_at_{k}": round(float(recall), 4),
        "similar_p50_ms": _ms(np.percentile(similar_times, 50)),
        "similar_p99_ms": _ms(np.percentile(similar_times, 99)),
        f"similar_recall_at_{k}": round(float(similar_recall), 4),
        "bytes_per_image_disk": round(disk / images),
        "bytes_per_image_ram": round(_index_ram(folder) / images),
        "bytes_scanned_exact": images * collection.model.queries * collection.model.dim * 4,  # float32 rows
    }
    collection.close()
    return result


def run(sizes: list[int], engine, *, queries: int, dim: int, kinds=("clustered", "uniform"),
        probes: int = 100, scratch: Path | None = None, log=print, served=None,
        modes: tuple[str, ...] | None = None) -> list[dict]:
    """`served(folder, row)`, when given, is called on each collection after its measurement at
    the default index kind, and may add to its row (the API throughput)."""
    rows = []
    for count in sizes:
        for kind in kinds:
            data = Data(kind, count, queries, dim)
            folder = Path(tempfile.mkdtemp(prefix="bench-query-", dir=scratch))
            try:
                started = time.perf_counter()
                vectors = data.probes(probes)
                query_vectors = data.probes(QUERY_COUNT + 5, stream=2)
                truth = build(folder, data, vectors)
                log(f"{count:,} {kind} images written in {time.perf_counter() - started:.0f} s")
                for mode in modes or (["auto", "exact"] if count <= 100_000 else ["auto"]):
                    row = {"images": count, "vectors": kind, "mode": mode,
                           **measure(folder, mode, engine, vectors, truth, query_vectors,
                                     queries=QUERY_COUNT)}
                    if served is not None and mode == "auto":
                        row |= served(folder, row)
                    log(str(row))
                    rows.append(row)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    return rows


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


_RAM_PROBE = """
import sys
{setup}

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

before = rss()
{opening}
print(rss() - before)
"""


def fresh_process_ram(setup: str, opening: str, folder: Path) -> int:
    """Resident memory that the statements `opening` add (they read the folder from
    sys.argv[1]), measured in a fresh process so that nothing freed earlier is reused;
    `setup` (the imports) runs before the first reading, so a module's own size is not
    counted as the index's."""
    code = _RAM_PROBE.replace("{setup}", setup).replace("{opening}", opening)
    out = subprocess.run([sys.executable, "-c", code, str(folder)], check=True, capture_output=True,
                         text=True)
    return int(out.stdout.split()[-1])


def _index_ram(folder: Path) -> int:
    """What opening the collection (catalog connection and vector index) adds."""
    return fresh_process_ram("from search.collection import Collection",
                             "collection = Collection.open(sys.argv[1])", folder)
