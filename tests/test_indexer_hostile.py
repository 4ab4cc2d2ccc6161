"""A folder of hostile files: indexing exits 0, valid files come out right, the rest say why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.collection import Collection
from tests.support.hostile import build_hostile_folder

pytestmark = pytest.mark.slow  # a folder of hostile files indexed by the CLI


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, tiny_dirs):
    root = tmp_path_factory.mktemp("hostile")
    valid, bad = build_hostile_folder(root / "files")
    index = root / "index"
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "index", str(root / "files"), "--index", str(index),
         "--model", str(tiny_dirs["opt"]), "--json", "--workers", "2"],
        capture_output=True, text=True, timeout=300,
    )
    return result, valid, bad, root, index


def test_indexing_exits_0_and_reports_each_bad_file(hostile_run):
    result, valid, bad, root, _ = hostile_run
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["added"] == len(valid)
    assert summary["failed"] == len(bad)
    reasons = {Path(e["path"]).name: e["error"] for e in summary["errors"]}
    assert set(reasons) == bad
    assert "decompression bomb" in reasons["bomb.png"]
    assert "not an image" in reasons["notes.jpg"]
    assert all(reason and "Traceback" not in reason for reason in reasons.values())


def test_valid_files_have_correct_colours_and_orientation(hostile_run):
    _, valid, _, root, index = hostile_run
    collection = Collection.open(index)
    try:
        for name, (size, colour) in valid.items():
            record = collection.catalog.at_path(str(root / "files" / name))
            assert record is not None and record.status == "ok", name
            assert (record.width, record.height) == size, name
            thumb = np.asarray(Image.open(collection.thumbnails.path(record.content_hash)).convert("RGB"))
            y = thumb.shape[0] // 4 if name == "rotated.jpg" else thumb.shape[0] // 2
            pixel = thumb[y, thumb.shape[1] // 2].astype(int)
            assert np.abs(pixel - np.array(colour)).max() <= 30, (name, pixel.tolist(), colour)
        assert collection.stats().vectors == len(valid) * collection.model.queries
    finally:
        collection.close()


def test_the_bomb_is_never_decoded(hostile_run):
    """Decoding in a process capped at 512 MB of address space: a decoded 30000x30000 RGB
    bomb would need 2.7 GB, so only a refusal before decoding can give the bomb error."""
    *_, root, _ = hostile_run
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20)); "
            "from indexer.steps import decode; from search.records import ImageFile; import sys; "
            "print(decode(ImageFile(sys.argv[1], 0, 0.0)).error)")
    result = subprocess.run([sys.executable, "-c", code, str(root / "files" / "bomb.png")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "decompression bomb" in result.stdout
