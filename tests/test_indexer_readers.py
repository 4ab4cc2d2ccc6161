"""Readers during an index run: stats, listings, stored vectors and vector search agree,
and show the index as it was before the run (its batches published only when it ends);
once it ends, every new, changed and removed image shows at once."""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.pipeline import IndexOptions, index_paths
from search.collection import Collection
from search.query.options import SearchOptions
from search.query.searcher import Searcher
from tests.support.corpus import write_corpus

HARNESS = Path(__file__).parent / "support" / "crash_harness.py"


@dataclass(frozen=True)
class View:
    """What a reader shows: each listed image's (path, content hash), and how many images
    and vectors its stats count."""

    images: dict[int, tuple[str, str]]
    counted: int
    vectors: int


def _view(reader: Collection, engine) -> View:
    """A reader's view, checked to agree with itself: stats, browse, the catalog's rows and
    stored vectors, and a text search that asks for every image."""
    stats = reader.stats()
    page = reader.browse(0, 1000)
    listed = {info.id: info.path for info in page.images}
    assert page.total == stats.images == len(listed)
    assert stats.vectors == stats.images * (stats.queries_per_image or 0)
    records = reader.catalog.get_many(listed)
    assert set(records) == set(listed)
    if listed:
        found, _ = reader.read_vectors(np.array(sorted(listed)), lambda v: v)
        assert found.tolist() == sorted(listed)  # every listed image has its vectors, no more
        hits = Searcher(reader, engine).search("a red circle", SearchOptions(k=len(listed) + 5))
        assert sorted(hit.id for hit in hits) == sorted(listed)  # vector search finds the same images
    return View({i: (records[i].path, records[i].content_hash) for i in listed}, stats.images,
                stats.vectors)


@pytest.fixture
def before(tmp_path, engines, catalog_url):
    """An index of 6 pictures, then the folder changed: 7 new, one changed, one deleted."""
    url = None if catalog_url.startswith("sqlite") else catalog_url
    photos, index = tmp_path / "photos", tmp_path / "index"
    paths = write_corpus(photos, 6, seed=1)
    collection = Collection.open(index, create=True, url=url)
    index_paths(collection, engines["opt"], [photos], IndexOptions(workers=0, ocr=False))
    collection.close()
    reader = Collection.open(index, url=url)
    state = _view(reader, engines["opt"])
    reader.close()
    for number, path in enumerate(write_corpus(photos / "more", 7, seed=2)):
        path.rename(photos / f"new{number}.png")
    (photos / "more").rmdir()
    Image.new("RGB", (40, 40), (10, 200, 30)).save(paths[1])  # changed: same path, new content
    paths[4].unlink()
    return {"photos": photos, "index": index, "url": url, "state": state, "changed": str(paths[1]),
            "deleted": str(paths[4])}


def test_readers_see_the_index_as_it_was_until_the_run_ends(before, engines):
    photos, index, url, state = before["photos"], before["index"], before["url"], before["state"]
    engine = engines["opt"]
    opened_before = Collection.open(index, url=url)  # a server's reader: it opened before the run
    seen: list[View] = []

    def turn(work):  # each batch's model work; batches committed so far are in the catalog
        if len(seen) < 6:
            reader = Collection.open(index, url=url)  # a `stats` or `search` started during the run
            seen.append(_view(reader, engine))
            reader.close()
            opened_before.refresh()
            seen.append(_view(opened_before, engine))
        return work()

    writer = Collection.open(index, url=url)
    summary = index_paths(writer, engine, [photos], IndexOptions(workers=0, ocr=False, batch_size=2),
                          turn=turn)
    writer.close()
    assert (summary.added, summary.updated, summary.removed) == (7, 1, 1)
    assert len(seen) == 6  # three batches seen, after 0, 1 and 2 of the 4 were committed
    for view in seen:
        assert view == state

    after = Collection.open(index, url=url)
    ended = _view(after, engine)
    after.close()
    assert ended.counted == 12
    paths = {path for path, _ in ended.images.values()}
    assert {str(p) for p in photos.glob("*.png")} == paths and before["deleted"] not in paths
    [changed] = [i for i, (path, _) in ended.images.items() if path == before["changed"]]
    assert state.images[changed][0] == before["changed"]  # the changed file keeps its id
    assert ended.images[changed][1] != state.images[changed][1]  # with its new content
    opened_before.refresh()
    assert _view(opened_before, engine) == ended  # the server's reader, once it caught up
    opened_before.close()


def test_a_run_that_stops_on_an_error_shows_what_it_committed(before, engines):
    photos, index, url, state = before["photos"], before["index"], before["url"], before["state"]
    calls = []

    def failing(work):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the model failed")
        return work()

    writer = Collection.open(index, url=url)
    with pytest.raises(RuntimeError, match="the model failed"):
        index_paths(writer, engines["opt"], [photos], IndexOptions(workers=0, ocr=False, batch_size=2),
                    turn=failing)
    writer.close()
    reader = Collection.open(index, url=url)
    stopped = _view(reader, engines["opt"])  # the two batches committed, agreeing throughout
    reader.close()
    assert stopped.counted in (6 + 3, 6 + 4)  # 4 files committed: 4 new, or 3 and the changed one
    assert set(state.images) <= set(stopped.images)  # the deletion waits for a run's end


@pytest.mark.slow  # index processes, one of them killed
def test_a_killed_runs_batches_show_when_the_next_run_starts(tmp_path, tiny_dirs, engines):
    photos, index, model = tmp_path / "photos", tmp_path / "index", tiny_dirs["opt"]
    write_corpus(photos, 5, seed=1)
    argv = ["index", str(photos), "--index", str(index), "--model", str(model), "--json", "--batch-size", "2",
            "--workers", "0", "--no-ocr"]
    first = subprocess.run([sys.executable, "-m", "cli.main", *argv], capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == 0, first.stderr
    write_corpus(photos / "more", 8, seed=2)
    killed = subprocess.run([sys.executable, str(HARNESS), "after-commit", "2", "--", *argv],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    reader = Collection.open(index)
    assert _view(reader, engines["opt"]).counted == 5  # the killed run's batches are not shown
    reader.close()

    seen = []

    def turn(work):
        if not seen:
            early = Collection.open(index)
            seen.append(_view(early, engines["opt"]))
            early.close()
        return work()

    writer = Collection.open(index)
    summary = index_paths(writer, engines["opt"], [photos], IndexOptions(workers=0, ocr=False, batch_size=2),
                          turn=turn)
    writer.close()
    assert summary.added == 8 - 4 and summary.unchanged == 5 + 4
    assert seen[0].counted == 5 + 4  # published as the next run started: a consistent point
    reader = Collection.open(index)
    assert _view(reader, engines["opt"]).counted == 13
    reader.close()
