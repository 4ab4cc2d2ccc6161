"""Re-indexing does only the work that changed, and never more model calls than needed."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from search.errors import InputError
from search.query.searcher import Searcher
from tests.support.corpus import all_vectors, write_corpus


def test_first_run_then_unchanged_makes_no_model_call(indexer, tmp_path):
    write_corpus(tmp_path / "photos", 12)
    first, collection = indexer(tmp_path / "photos", batch_size=5)
    assert (first.added, first.failed, first.unchanged) == (12, 0, 0)
    assert first.model_calls > 0
    assert collection.stats().vectors == 12 * collection.model.queries
    again, collection = indexer(tmp_path / "photos", batch_size=5)
    assert again.model_calls == 0
    assert (again.added, again.updated, again.moved, again.removed, again.unchanged) == (0, 0, 0, 0, 12)
    assert collection.snapshot_state == "loaded"


def test_a_pass_over_unchanged_files_builds_no_model_part_nor_a_snapshot(indexer, tiny_dirs, tmp_path):
    """What a watcher's reconcile costs: a walk and the catalog's rows, no model (at real size
    the parts an index run uses are gigabytes), and no rewrite of the vector snapshot."""
    from search.collection import SNAPSHOT
    from search.models import Blip2Engine
    from tests.support.engines import FLOAT32

    write_corpus(tmp_path / "photos", 6)
    indexer(tmp_path / "photos")
    snapshot = tmp_path / "index" / SNAPSHOT
    written = snapshot.stat().st_mtime_ns
    fresh = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=FLOAT32)  # no part built yet
    os.utime(tmp_path / "photos" / sorted(os.listdir(tmp_path / "photos"))[0], (1e9, 1e9))  # touched
    again, _ = indexer(tmp_path / "photos", engine=fresh)
    assert (again.unchanged, again.model_calls, fresh.loaded) == (6, 0, [])
    assert snapshot.stat().st_mtime_ns == written


def test_renamed_file_is_moved_with_no_model_call(indexer, tmp_path):
    paths = write_corpus(tmp_path / "photos", 6)
    _, collection = indexer(tmp_path / "photos")
    old = collection.catalog.at_path(str(paths[2]))
    target = tmp_path / "photos" / "sub" / "renamed.png"
    target.parent.mkdir()
    os.rename(paths[2], target)
    summary, collection = indexer(tmp_path / "photos")
    assert (summary.moved, summary.added, summary.removed, summary.model_calls) == (1, 0, 0, 0)
    moved = collection.catalog.at_path(str(target))
    assert moved.id == old.id and moved.caption == old.caption
    assert collection.catalog.at_path(str(paths[2])) is None
    ids, vectors = all_vectors(collection)  # the vector index holds the moved image's vectors
    np.testing.assert_array_equal(vectors[ids == old.id][0], collection.vectors_of(old.id))


def test_deleted_file_disappears_from_search(indexer, engines, tmp_path):
    paths = write_corpus(tmp_path / "photos", 6)
    _, collection = indexer(tmp_path / "photos")
    gone = collection.catalog.at_path(str(paths[0]))
    paths[0].unlink()
    summary, collection = indexer(tmp_path / "photos")
    assert (summary.removed, summary.model_calls) == (1, 0)
    hits = Searcher(collection, engines["opt"]).search("a red circle")
    assert gone.id not in [hit.id for hit in hits]
    assert len(hits) == 5
    assert collection.stats().vectors == 5 * collection.model.queries


def test_changed_file_is_re_embedded(indexer, engines, tmp_path):
    paths = write_corpus(tmp_path / "photos", 4)
    _, collection = indexer(tmp_path / "photos")
    before = collection.catalog.at_path(str(paths[1]))
    Image.new("RGB", (40, 40), (10, 200, 30)).save(paths[1])
    summary, collection = indexer(tmp_path / "photos")
    assert (summary.updated, summary.unchanged) == (1, 3)
    assert summary.model_calls > 0
    after = collection.catalog.at_path(str(paths[1]))
    assert after.id == before.id and after.content_hash != before.content_hash
    expected = engines["opt"].embed_images([Image.open(paths[1]).convert("RGB")])[0]
    ids, vectors = all_vectors(collection)
    np.testing.assert_allclose(vectors[ids == after.id][0], expected, atol=2e-3)  # float16


def test_touched_file_with_same_content_is_unchanged(indexer, tmp_path):
    paths = write_corpus(tmp_path / "photos", 3)
    indexer(tmp_path / "photos")
    os.utime(paths[0], (1_000_000, 1_000_000))
    summary, _ = indexer(tmp_path / "photos")
    assert (summary.unchanged, summary.model_calls) == (3, 0)


def test_duplicate_content_reuses_vectors(indexer, tmp_path):
    paths = write_corpus(tmp_path / "photos", 3)
    indexer(tmp_path / "photos")
    (tmp_path / "photos" / "copy.png").write_bytes(paths[0].read_bytes())
    summary, collection = indexer(tmp_path / "photos")
    assert (summary.added, summary.model_calls) == (1, 0)
    assert collection.stats().vectors == 4 * collection.model.queries


def test_missing_or_empty_root_is_refused_and_changes_nothing(indexer, tmp_path):
    write_corpus(tmp_path / "photos", 3)
    _, collection = indexer(tmp_path / "photos")
    with pytest.raises(InputError, match="does not exist"):
        indexer(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        indexer(tmp_path / "empty")
    for path in (tmp_path / "photos").iterdir():
        path.unlink()
    with pytest.raises(InputError, match="holds no images"):
        indexer(tmp_path / "photos")  # an emptied (say, unmounted) folder must not wipe the catalog
    assert collection.stats().images == 3
    assert collection.stats().vectors == 3 * collection.model.queries


def test_exclude_and_hidden_files(indexer, tmp_path):
    write_corpus(tmp_path / "photos", 3)
    write_corpus(tmp_path / "photos" / "raw", 2, seed=5)
    write_corpus(tmp_path / "photos" / ".cache", 2, seed=6)
    (tmp_path / "photos" / ".hidden.png").write_bytes((tmp_path / "photos" / "img0000.png").read_bytes())
    summary, _ = indexer(tmp_path / "photos", exclude=("raw/*",))
    assert summary.added == 3


def test_worker_processes_give_the_same_index(indexer, engines, tmp_path):
    write_corpus(tmp_path / "photos", 10)
    summary, collection = indexer(tmp_path / "photos", workers=2, batch_size=4)
    assert summary.added == 10
    ids, vectors = all_vectors(collection)
    for image_id, stored in zip(ids, vectors, strict=True):
        record = collection.catalog.get(int(image_id))
        fresh = engines["opt"].embed_images([Image.open(record.path).convert("RGB")])[0]
        np.testing.assert_allclose(stored, fresh, atol=2e-3)


def test_overlapping_roots_plan_each_file_once(indexer, tmp_path):
    write_corpus(tmp_path / "nest", 4, seed=1)
    write_corpus(tmp_path / "nest" / "sub", 3, seed=2)
    summary, collection = indexer(tmp_path / "nest", tmp_path / "nest" / "sub", tmp_path / "nest")
    assert (summary.added, summary.failed) == (7, 0)
    assert collection.stats().images == 7 and collection.stats().vectors == 7 * collection.model.queries
    again, _ = indexer(tmp_path / "nest" / "sub", tmp_path / "nest")
    assert (again.unchanged, again.added, again.removed, again.model_calls) == (7, 0, 0, 0)


def test_a_file_gone_between_the_walk_and_the_plan_is_skipped(indexer, tmp_path):
    from indexer.plan import plan
    from search.records import ImageFile

    paths = write_corpus(tmp_path / "photos", 3)
    _, collection = indexer(tmp_path / "photos")
    files = [ImageFile(str(p), p.stat().st_size + 1, 0.0) for p in paths]  # all look changed
    paths[1].unlink()  # deleted after the walk saw it, as a syncing folder does
    planned = plan(collection, str(tmp_path / "photos"), files)
    assert [r.path for r in planned.removed] == [str(paths[1])]
    assert len(planned.touched) == 2 and not planned.embed


def test_an_unreadable_file_is_a_failed_row_and_the_run_goes_on(tmp_path, tiny_dirs):
    """As root a file's mode does not stop reads: the CLI runs without the capabilities that
    override it."""
    import json
    import shutil
    import subprocess
    import sys

    from tests.support.needs import missing

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        missing("setpriv (Debian: util-linux)")
    paths = write_corpus(tmp_path / "photos", 4)
    paths[2].chmod(0)
    result = subprocess.run(
        [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all", "--",
         sys.executable, "-m", "cli.main", "index", str(tmp_path / "photos"),
         "--index", str(tmp_path / "index"), "--model", str(tiny_dirs["opt"]), "--workers", "1", "--json"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["added"], summary["failed"]) == (3, 1)
    assert summary["errors"] == [{"path": str(paths[2]), "error": "permission denied"}]


def test_missing_or_damaged_thumbnails_are_made_again_without_the_model(indexer, tmp_path):
    paths = write_corpus(tmp_path / "photos", 4)
    _, collection = indexer(tmp_path / "photos")
    records = [collection.catalog.at_path(str(path)) for path in paths]
    thumbnails = [collection.thumbnails.path(record.content_hash) for record in records]
    whole = thumbnails[0].read_bytes()
    thumbnails[0].unlink()
    thumbnails[1].write_bytes(whole[: len(whole) // 2])  # truncated
    thumbnails[2].write_bytes(b"RIFF\x00\x00\x00\x00WEBPgarbage")
    summary, collection = indexer(tmp_path / "photos")
    assert (summary.unchanged, summary.model_calls) == (4, 0)
    for path in thumbnails[:3]:
        assert path.read_bytes() == whole if path == thumbnails[0] else path.stat().st_size > 12
    assert all(collection.thumbnails.whole(record.content_hash) for record in records)
    assert not list((tmp_path / "index" / "thumbnails").rglob("*.tmp"))


def test_a_folder_unreadable_for_a_moment_keeps_its_images(indexer, tmp_path, monkeypatch):
    """A folder that cannot be listed (a share gone for a moment; permissions, which root
    ignores, so the listing is made to fail) is reported, and what the catalog holds under
    it stays, vectors and all: nothing is removed, and putting it back costs no model call.
    On a first run it is reported too, not skipped silently."""
    from indexer import scan as scanning

    write_corpus(tmp_path / "photos" / "a", 3, seed=1)
    write_corpus(tmp_path / "photos" / "b", 3, seed=2)
    hidden = str(tmp_path / "photos" / "b")
    listing = os.scandir

    def failing(folder):
        if str(folder) == hidden:
            raise PermissionError(13, "Permission denied", str(folder))
        return listing(folder)

    first, collection = indexer(tmp_path / "photos")
    assert (first.added, first.errors) == (6, [])
    monkeypatch.setattr(scanning.os, "scandir", failing)
    gone, collection = indexer(tmp_path / "photos")
    assert (gone.removed, gone.unchanged, gone.model_calls) == (0, 3, 0)
    [error] = gone.errors
    assert error.path == hidden and "folder unreadable" in error.error and "kept" in error.error
    assert collection.stats().images == 6 and collection.stats().vectors == 6 * collection.model.queries
    monkeypatch.setattr(scanning.os, "scandir", listing)
    back, collection = indexer(tmp_path / "photos")
    assert (back.added, back.removed, back.unchanged, back.model_calls) == (0, 0, 6, 0)



def test_a_folder_unreadable_on_a_first_run_is_reported(indexer, tmp_path, monkeypatch):
    from indexer import scan as scanning

    write_corpus(tmp_path / "photos" / "a", 3, seed=1)
    write_corpus(tmp_path / "photos" / "b", 3, seed=2)
    hidden, listing = str(tmp_path / "photos" / "b"), os.scandir

    def failing(folder):
        if str(folder) in (hidden, everything[0]):
            raise PermissionError(13, "Permission denied", str(folder))
        return listing(folder)

    everything = [""]
    monkeypatch.setattr(scanning.os, "scandir", failing)
    fresh, _ = indexer(tmp_path / "photos")
    assert fresh.added == 3 and [e.path for e in fresh.errors] == [hidden]
    everything[0] = str(tmp_path / "photos")  # the root itself: refused, nothing changed
    with pytest.raises(InputError, match=r"holds no images \(folder unreadable"):
        indexer(tmp_path / "photos")
