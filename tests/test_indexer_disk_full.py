"""A full disk: indexing stops with one line and keeps every batch it committed; reading a
full index still works (reading never needs to write); no temp file stays behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.corpus import write_corpus
from tests.support.needs import missing

pytestmark = pytest.mark.slow  # a small filesystem filled up


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs (root can mount one; CI runs as root)."""
    folder = Path("/tmp") / f"blip2-full-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        folder.rmdir()
        missing(f"a small tmpfs (mount as root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli.main", *argv], capture_output=True, text=True,
                          timeout=300)


def test_indexing_onto_a_full_disk_stops_in_one_line_and_reading_still_works(small_disk, tmp_path, tiny_dirs):
    photos = tmp_path / "photos"
    write_corpus(photos, 300, seed=5, side=96)  # thumbnails and catalog rows outgrow 3 MB
    index = small_disk / "index"
    model = str(tiny_dirs["opt"])
    result = _cli("index", str(photos), "--index", str(index), "--model", model, "--workers", "0",
                  "--batch-size", "16", "--json")
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "internal error" not in lines[0] and "Background" not in lines[0] and "Traceback" not in lines[0]
    assert "full" in lines[0] or "No space left" in lines[0], lines[0]
    assert not list(index.rglob("*.tmp")), "temp files left behind"
    stats = _cli("stats", "--index", str(index), "--json")
    assert stats.returncode == 0, stats.stderr
    counted = json.loads(stats.stdout)
    assert 0 < counted["images"] < 300
    assert counted["vectors"] == counted["images"] * counted["queries_per_image"]
    # the snapshot was behind (the run stopped before saving it): rebuilt, and kept in memory
    assert stats.stderr.strip().splitlines() == [
        "blip2-search: warning: the rebuilt vector index is kept in memory only: it could not be saved "
        "(No space left on device)"]
    found = _cli("search", "a red circle", "--index", str(index), "-k", "5", "--json")
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)["results"]) == 5
