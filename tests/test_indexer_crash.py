"""Kill the indexer with SIGKILL at several points; resuming loses and duplicates nothing."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from search.collection import SNAPSHOT, Collection
from search.media.images import open_image
from search.query.searcher import Searcher
from tests.support.corpus import all_vectors, write_corpus

pytestmark = pytest.mark.slow  # indexers killed at several points, each a process

HARNESS = Path(__file__).parent / "support" / "crash_harness.py"
COUNT = 200


def _run(mode: str, n: int, photos: Path, index: Path, model: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, str(HARNESS), mode, str(n), "--", "index", str(photos), "--index", str(index),
            "--model", str(model), "--json", "--batch-size", "8", "--workers", "1", "--no-ocr"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def _rows(index: Path) -> int:
    with sqlite3.connect(index / "catalog.db") as db:
        return db.execute("SELECT count(*) FROM images").fetchone()[0]


def _temp_files(index: Path) -> int:
    return len(list(index.glob(f".{SNAPSHOT}.*.tmp")))


def _kill_when(rows_at_least: int, photos, index, model) -> int:
    """Start a plain run and SIGKILL it from outside once the catalog holds enough rows;
    returns its exit status (-SIGKILL when the kill came before the run ended)."""
    argv = [sys.executable, "-m", "cli.main", "index", str(photos), "--index", str(index),
            "--model", str(model), "--json", "--batch-size", "8", "--workers", "1", "--no-ocr"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        if (index / "catalog.db").exists() and _rows(index) >= rows_at_least:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    return process.wait(timeout=60)


@pytest.fixture(scope="module")
def crashed_and_resumed(tmp_path_factory, tiny_dirs):
    root = tmp_path_factory.mktemp("crash")
    photos, index, model = root / "photos", root / "index", tiny_dirs["opt"]
    write_corpus(photos, COUNT, seed=3)
    history = []
    for mode, n in [("after-commit", 3), ("in-commit", 4), ("after-commit", 6)]:
        result = _run(mode, n, photos, index, model)
        history.append((mode, n, result.returncode, _rows(index)))
        assert result.returncode == -signal.SIGKILL, result.stderr
    killed = _kill_when(_rows(index) + 30, photos, index, model)
    assert killed == -signal.SIGKILL, "the run ended before the kill"
    history.append(("outside-kill", 0, killed, _rows(index)))
    # Each run first rebuilds the snapshot left behind by the kill before it (write 1), then
    # indexes the rest and writes the snapshot again at the end (write 2): die in write 2.
    result = _run("snapshot-half", 2, photos, index, model)
    assert result.returncode == -signal.SIGKILL, result.stderr
    history.append(("snapshot-half", 2, _temp_files(index), _rows(index)))
    write_corpus(photos / "more", 10, seed=4)
    result = _run("snapshot-rename", 2, photos, index, model)
    assert result.returncode == -signal.SIGKILL, result.stderr
    history.append(("snapshot-rename", 2, _temp_files(index), _rows(index)))
    final = _run("none", 0, photos, index, model)
    assert final.returncode == 0, final.stderr
    return root, history, json.loads(final.stdout)


def test_kills_happened_at_several_points(crashed_and_resumed):
    _, history, _ = crashed_and_resumed
    rows = [entry[3] for entry in history]
    assert rows == sorted(rows)  # progress kept across kills
    assert 0 < rows[0] < rows[2] < COUNT  # the first kills came mid-run
    assert rows[-2] == COUNT and rows[-1] == COUNT + 10  # the snapshot kills came after every batch
    assert [entry[2] for entry in history[-2:]] == [1, 1]  # each left a half-done snapshot write


def test_resumed_index_is_complete_and_unduplicated(crashed_and_resumed, tiny_dirs, engines):
    root, _, final = crashed_and_resumed
    assert final["model_calls"] == 0  # everything was already committed
    assert final["unchanged"] == COUNT + 10
    assert not list((root / "index").glob(f".{SNAPSHOT}.*"))
    collection = Collection.open(root / "index")
    try:
        paths = sorted(str(p) for p in (root / "photos").rglob("*.png"))
        with sqlite3.connect(root / "index" / "catalog.db") as db:
            stored = [r[0] for r in db.execute("SELECT path FROM images ORDER BY path")]
            vector_rows = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        assert stored == paths  # every image exactly once
        assert vector_rows == len(paths)
        queries = collection.model.queries
        assert collection.stats().vectors == len(paths) * queries
        ids, _ = all_vectors(collection)
        assert len(set(ids.tolist())) == len(ids) == len(paths)
        searcher = Searcher(collection, engines["opt"])
        for path in paths:
            record = collection.catalog.at_path(path)
            hits = searcher.similar.find(image=open_image(path), k=1)
            assert hits[0].id == record.id, path
            assert collection.thumbnails.path(record.content_hash).exists()
        np.testing.assert_array_equal(np.sort(ids), np.sort([collection.catalog.at_path(p).id
                                                              for p in paths]))
    finally:
        collection.close()
