"""Two writers on one index take turns: nothing lost, nothing twice, and the vector index
always holds every catalog image's vectors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.collection import Collection
from search.store.lock import exclusive
from tests.support.corpus import write_corpus

pytestmark = pytest.mark.slow  # writer processes that wait for each other


def _index(folder: Path, index: Path, model: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "index", str(folder), "--index", str(index), "--model", str(model),
         "--json", "--workers", "0", "--batch-size", "4", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[dict, str]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return json.loads(out), err


def _check(index: Path, folders: list[Path]) -> None:
    """Every file exactly once, and the vector index holds every image's vectors."""
    collection = Collection.open(index)
    try:
        files = sorted(str(p) for folder in folders for p in folder.glob("*.png"))  # not the root's marker
        stored = sorted(collection.catalog.under(str(folders[0].parent)))
        assert stored == files
        stats = collection.stats()
        assert stats.images == len(files) and stats.vectors == len(files) * stats.queries_per_image
    finally:
        collection.close()
    reopened = Collection.open(index)
    assert reopened.snapshot_state == "loaded"  # the last writer's snapshot matches the catalog
    reopened.close()


@pytest.mark.parametrize("same_folder", [False, True])
def test_two_writers_take_turns(tmp_path, tiny_dirs, same_folder):
    a, b = tmp_path / "photos" / "a", tmp_path / "photos" / "b"
    write_corpus(a, 24, seed=1)
    write_corpus(b, 24, seed=2)
    index = tmp_path / "index"
    first = _index(a, index, tiny_dirs["opt"])
    second = _index(a if same_folder else b, index, tiny_dirs["opt"])
    (one, _), (two, _) = _finish(first), _finish(second)
    _check(index, [a] if same_folder else [a, b])
    if same_folder:
        assert sorted([one["added"], two["added"]]) == [0, 24]
        assert sorted([one["unchanged"], two["unchanged"]]) == [0, 24]
    else:
        assert one["added"] == two["added"] == 24


def test_a_second_writer_waits_or_says_who_holds_the_index(tmp_path, tiny_dirs):
    write_corpus(tmp_path / "photos" / "a", 3)
    index = tmp_path / "index"
    index.mkdir()
    with exclusive(index):
        refused = _index(tmp_path / "photos" / "a", index, tiny_dirs["opt"], "--no-wait")
        out, err = refused.communicate(timeout=120)
        assert refused.returncode == 1 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "another writer holds the index" in lines[0] and "pid " in lines[0]
        log = tmp_path / "waiting.err"
        with open(log, "w") as err:
            waiting = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "index", str(tmp_path / "photos" / "a"),
                 "--index", str(index), "--model", str(tiny_dirs["opt"]), "--json", "--workers", "0"],
                stdout=subprocess.PIPE, stderr=err, text=True)
            deadline = time.monotonic() + 120
            while "waiting for another writer" not in log.read_text() and time.monotonic() < deadline:
                assert waiting.poll() is None, log.read_text()
                time.sleep(0.1)
            assert "pid " in log.read_text()  # it says whom it waits for
            time.sleep(1)
            assert waiting.poll() is None  # and waits
    out, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, log.read_text()
    assert json.loads(out)["added"] == 3
    _check(index, [tmp_path / "photos" / "a"])
