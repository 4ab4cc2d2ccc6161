"""Search, rerank, hybrid, filters, paging, similar and ask over a real small index."""

from __future__ import annotations

import os
from datetime import datetime

import numpy as np
import pytest

from search.errors import InputError, NotFound
from search.media.images import open_image
from search.query.searcher import Searcher, SearchOptions
from tests.support.corpus import all_vectors, write_corpus


@pytest.fixture
def searcher(indexer, engines, tmp_path, catalog_url):
    """Every test here runs with its catalog on SQLite and on PostgreSQL."""
    write_corpus(tmp_path / "photos" / "a", 8, seed=1)
    write_corpus(tmp_path / "photos" / "b", 8, seed=2)
    for i, path in enumerate(sorted((tmp_path / "photos" / "a").iterdir())):
        stamp = datetime(2020, 1, 1 + i).timestamp()
        os.utime(path, (stamp, stamp))
    url = None if catalog_url.startswith("sqlite") else catalog_url  # SQLite: the index folder's own
    _, collection = indexer(tmp_path / "photos", url=url)
    return Searcher(collection, engines["opt"])


def _brute_force(searcher, query):
    ids, vectors = all_vectors(searcher.collection)
    scores = searcher.engine.itc(vectors, searcher.engine.embed_texts([query]))[:, 0]
    return sorted(zip(ids.tolist(), scores.tolist(), strict=True), key=lambda t: (-t[1], t[0]))


def test_search_ranks_by_itc(searcher):
    hits = searcher.search("a red circle", SearchOptions(k=5))
    expected = _brute_force(searcher, "a red circle")[:5]
    assert [h.id for h in hits] == [i for i, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-5)
    assert all(h.match is None and h.caption for h in hits)


def test_paging(searcher):
    everything = searcher.search("blue", SearchOptions(k=16))
    page = searcher.search("blue", SearchOptions(k=5, offset=5))
    assert [h.id for h in page] == [h.id for h in everything[5:10]]
    assert searcher.search("blue", SearchOptions(k=5, offset=20)) == []


def test_rerank_fills_match_and_orders_by_it(searcher):
    hits = searcher.search("a red circle", SearchOptions(k=6, rerank=True, rerank_top=10))
    assert len(hits) == 6
    matches = [h.match for h in hits]
    assert matches == sorted(matches, reverse=True)
    images = [open_image(h.path) for h in hits]
    np.testing.assert_allclose(matches, searcher.engine.itm(images, "a red circle"), atol=1e-5)
    top10 = {h.id for h in searcher.search("a red circle", SearchOptions(k=10))}
    assert {h.id for h in hits} <= top10  # reranking reorders the first-stage top N


def test_min_match_drops_hits_and_implies_rerank(searcher):
    reranked = searcher.search("a red circle", SearchOptions(k=16, rerank=True))
    threshold = float(np.median([h.match for h in reranked]))
    kept = searcher.search("a red circle", SearchOptions(k=16, min_match=threshold))
    assert kept and all(h.match >= threshold for h in kept)
    assert len(kept) == sum(h.match >= threshold for h in reranked)


def test_hybrid_fuses_caption_ranks(searcher):
    record = searcher.collection.catalog.get(3)
    word = record.caption.split()[0]
    hits = searcher.search(word, SearchOptions(k=16, hybrid=True))
    by_text = searcher.collection.catalog.fulltext.caption_search(word, 16)
    by_vector = [h.id for h in searcher.search(word, SearchOptions(k=16))]
    assert 3 in by_text
    fused: dict[int, float] = {}
    for ranking in (by_vector, by_text):
        for rank, image in enumerate(ranking, start=1):
            fused[image] = fused.get(image, 0.0) + 1 / (60 + rank)
    expected = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:16]
    assert [h.id for h in hits] == [image for image, _ in expected]
    np.testing.assert_allclose([h.score for h in hits], [score for _, score in expected])


def test_path_and_date_filters(searcher, tmp_path):
    folder_a = str(tmp_path / "photos" / "a")
    hits = searcher.search("star", SearchOptions(k=16, path_prefix=folder_a))
    assert len(hits) == 8 and all(h.path.startswith(folder_a) for h in hits)
    window = SearchOptions(k=16, after=datetime(2020, 1, 3), before=datetime(2020, 1, 6))
    dated = searcher.search("star", window)
    assert sorted(os.path.basename(h.path) for h in dated) == ["img0002.png", "img0003.png", "img0004.png"]


def test_similar_by_id_leaves_the_query_out_and_scores_by_mean_max(searcher):
    hits = searcher.similar.find(image_id=5, k=4)
    assert 5 not in [h.id for h in hits] and len(hits) == 4
    query = searcher.collection.vectors_of(5).astype(np.float32)
    ids, vectors = all_vectors(searcher.collection)
    scores = np.einsum("ncd,qd->ncq", vectors, query).max(axis=1).mean(axis=1)
    expected = [int(i) for i in ids[np.argsort(-scores, kind="stable")] if i != 5][:4]
    assert [h.id for h in hits] == expected


def test_similar_by_image_finds_itself_first(searcher):
    record = searcher.collection.catalog.get(7)
    hits = searcher.similar.find(image=open_image(record.path), k=3)
    assert hits[0].id == 7 and hits[0].score > 0.99


def test_ask_answers_about_the_image(searcher):
    record = searcher.collection.catalog.get(2)
    answer = searcher.questions.ask(2, "what color is the circle?")
    assert answer == searcher.engine.ask(open_image(record.path), "what color is the circle?")


def test_errors(searcher):
    with pytest.raises(InputError, match="empty"):
        searcher.search("   ")
    with pytest.raises(NotFound, match="no indexed image with id 999"):
        searcher.questions.ask(999, "what?")
    with pytest.raises(NotFound):
        searcher.similar.find(image_id=999)
    with pytest.raises(InputError):
        searcher.search("x", SearchOptions(k=0))
