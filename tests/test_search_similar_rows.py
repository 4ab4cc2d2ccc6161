"""Similar images on the exact index: the int8 first stage against every image scored in
float32, on the hard case (uniform vectors: scores close together) and a clustered one."""

from __future__ import annotations

import numpy as np
import pytest

from search.collection import Collection
from search.models import int8rows
from search.query import scoring, similar
from search.query.searcher import Searcher
from search.records import ImageFile, ModelInfo
from search.store.vectors import MemoryIndex

Q, D, N = 32, 64, 4000


def _vectors(kind: str, seed: int = 20261206) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(N, Q, D))
    if kind == "clustered":
        centres = rng.normal(size=(40, D))
        vectors = centres[rng.integers(0, 40, N)][:, None, :] + 0.7 * vectors
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_the_int8_pool_holds_the_exact_top_ten(kind):
    vectors = _vectors(kind)
    index = MemoryIndex(Q, D, "exact")
    for start in range(0, N, 700):  # batches spread over the slices
        index.add(np.arange(start, min(start + 700, N)) + 1, vectors[start : start + 700])
    rows = int8rows.Int8Rows(index.row_blocks(), Q, index)
    for probe in range(0, N, 200):
        query = vectors[probe]
        expected = scoring.top(*index.score_images(query), 10)
        got = scoring.top(*rows.best(query, similar.SIMILAR_POOL), 10)
        assert [i for i, _ in got] == [i for i, _ in expected]
        assert np.allclose([s for _, s in got], [s for _, s in expected], atol=1e-6)


def test_the_copy_is_made_from_the_second_query_and_results_do_not_change(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(int8rows.Int8Rows, "__init__", _spy(int8rows.Int8Rows.__init__, made))
    vectors = _vectors("uniform").astype(np.float16)
    collection = Collection.open(tmp_path / "index", create=True)
    collection.bind_model(ModelInfo("synthetic", Q, D))
    collection.commit([ImageFile(path=f"/s/{i}.png", size=1, mtime=1.0, root="/s", content_hash=str(i),
                                 vectors=vectors[i]) for i in range(N)])
    collection.save()  # as an index run ends: the index in step with the catalog (what the copy is kept for)
    searcher = Searcher(collection, engine=None)
    first = searcher.similar.find(image_id=7, k=10)
    assert made == []  # a one-shot query scores every image in float32
    again = [searcher.similar.find(image_id=7, k=10) for _ in range(3)]
    assert len(made) == 1  # made once, kept until the catalog changes
    assert all([hit.id for hit in hits] == [hit.id for hit in first] for hits in again)
    assert all(abs(a.score - b.score) < 1e-6 for hits in again for a, b in zip(hits, first, strict=True))
    collection.commit([ImageFile(path="/s/new.png", size=1, mtime=1.0, root="/s", content_hash="new",
                                 vectors=vectors[6])])  # a twin of id 7, the seventh file
    collection.save()
    for _ in range(2):
        hits = searcher.similar.find(image_id=7, k=10)
    assert len(made) == 2 and hits[0].score == pytest.approx(1.0, abs=1e-3)  # the new twin, first
    collection.close()


def _spy(init, made):
    def spied(self, *args, **kwargs):
        made.append(1)
        init(self, *args, **kwargs)
    return spied
