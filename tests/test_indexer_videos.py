"""Videos in the index: one item each, with their moments; incremental runs, moves, copies,
deletes and changes work for them as for images; a broken video fails alone."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from search.collection import Collection
from search.query.options import SearchOptions
from search.query.searcher import Searcher
from tests.support.corpus import all_vectors, write_corpus
from tests.support.videos import corpus, truncated

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
HARNESS = Path(__file__).parent / "support" / "crash_harness.py"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return corpus(tmp_path_factory.mktemp("clips"), seed=7, count=3)


def _library(tmp_path, clips, images: int = 4):
    folder = tmp_path / "library"
    write_corpus(folder, images)
    for clip in clips:
        shutil.copy(clip.path, folder / clip.path.name)
    return folder


def test_a_video_is_one_item_with_its_moments(indexer, tmp_path, clips, catalog_url):
    folder = _library(tmp_path, clips)
    summary, collection = indexer(folder, ocr=False, url=catalog_url)
    assert (summary.added, summary.failed) == (4 + len(clips), 0)
    stats = collection.stats()
    assert (stats.images, stats.videos, stats.failed) == (4, len(clips), 0)
    assert stats.moments >= sum(len(clip.shots) for clip in clips)
    ids, _ = all_vectors(collection)
    assert len(ids) == stats.images + stats.moments  # the vector index holds images and moments
    for clip in clips:
        video = collection.catalog.at_path(str(folder / clip.path.name))
        assert video.media == "video" and video.status == "ok" and video.parent is None
        assert video.end_s == pytest.approx(clip.shots[-1].end, abs=0.2)  # its duration
        moments = collection.catalog.moments.of(video.id)
        assert [m.parent for m in moments] == [video.id] * len(moments)
        assert all(m.start_s < m.end_s and m.frame_s is not None for m in moments)
        assert all(collection.thumbnails.whole(m.content_hash) for m in moments)
        assert collection.thumbnails.whole(video.content_hash)
    page = collection.browse(0, 50)  # browsing lists each video once, as itself
    assert page.total == 4 + len(clips)
    assert sorted(info.media for info in page.images) == ["image"] * 4 + ["video"] * len(clips)


def test_unchanged_moved_copied_and_deleted_videos(indexer, engines, tmp_path, clips, catalog_url):
    folder = _library(tmp_path, clips)

    def index():
        return indexer(folder, ocr=False, url=catalog_url)

    first, collection = index()
    video = collection.catalog.at_path(str(folder / clips[0].path.name))
    moments = collection.catalog.moments.of(video.id)

    again, collection = index()
    assert (again.unchanged, again.model_calls) == (first.added, 0)

    (folder / "sub").mkdir()
    os.rename(folder / clips[0].path.name, folder / "sub" / "renamed.mp4")
    shutil.copy(folder / clips[1].path.name, folder / "sub" / "copy" f"{clips[1].path.suffix}")
    moved, collection = index()
    assert (moved.moved, moved.added, moved.removed, moved.model_calls) == (1, 1, 0, 0)
    after = collection.catalog.at_path(str(folder / "sub" / "renamed.mp4"))
    assert after.id == video.id
    followed = collection.catalog.moments.of(video.id)
    assert [m.id for m in followed] == [m.id for m in moments]
    assert all(m.path.startswith(after.path + "#") for m in followed)  # path: filters hold for them
    copy = collection.catalog.at_path(str(folder / "sub" / f"copy{clips[1].path.suffix}"))
    twin = collection.catalog.at_path(str(folder / clips[1].path.name))
    assert len(collection.catalog.moments.of(copy.id)) == len(collection.catalog.moments.of(twin.id))

    (folder / "sub" / "renamed.mp4").unlink()
    removed, collection = index()
    assert (removed.removed, removed.model_calls) == (1, 0)
    assert collection.catalog.get(video.id) is None
    assert all(collection.catalog.get(m.id) is None for m in moments)
    ids, _ = all_vectors(collection)
    assert not set(ids.tolist()) & {m.id for m in moments}
    hits = Searcher(collection, engines["opt"]).search("a red circle", SearchOptions(k=50))
    assert video.id not in {hit.id for hit in hits}


def test_a_changed_video_keeps_its_id_and_gets_new_moments(indexer, tmp_path, clips, catalog_url):
    folder = _library(tmp_path, clips[:1], images=1)
    target = folder / clips[0].path.name
    _, collection = indexer(folder, ocr=False, url=catalog_url)
    video = collection.catalog.at_path(str(target))
    old = {m.id for m in collection.catalog.moments.of(video.id)}
    shutil.copy(clips[1].path, target)  # other content at the same path
    summary, collection = indexer(folder, ocr=False, url=catalog_url)
    assert summary.updated == 1
    changed = collection.catalog.at_path(str(target))
    new = collection.catalog.moments.of(changed.id)
    assert changed.id == video.id and changed.content_hash != video.content_hash
    assert not old & {m.id for m in new}
    assert all(collection.catalog.get(i) is None for i in old)
    assert collection.stats().moments == len(new)
    ids, _ = all_vectors(collection)
    image = collection.catalog.at_path(str(folder / "img0000.png"))
    assert set(ids.tolist()) == {m.id for m in new} | {image.id}


def test_a_broken_video_fails_alone(indexer, tmp_path, clips):
    folder = _library(tmp_path, clips[:2], images=2)
    mp4 = next(clip for clip in clips if clip.container == ".mp4")
    truncated(mp4.path, folder / "cut.mp4", fraction=0.4)
    (folder / "not-a-video.mkv").write_text("just text")
    summary, collection = indexer(folder, ocr=False)
    failed = {os.path.basename(error.path): error.error for error in summary.errors}
    assert "not-a-video.mkv" in failed and failed["not-a-video.mkv"]
    assert summary.added + summary.failed == 2 + 2 + 2
    assert collection.stats().videos + collection.stats().images == summary.added
    assert summary.failed >= 1
    for name, why in failed.items():
        row = collection.catalog.at_path(str(folder / name))
        assert row.status == "failed" and row.error and "\n" not in why
        assert collection.catalog.moments.children([row.id]) == []


def test_every_indexed_video_has_its_moments_and_their_vectors(indexer, tmp_path, clips):
    """A video and its moments are committed in one transaction (a killed run loses both)."""
    folder = _library(tmp_path, clips[:2], images=0)
    _, collection = indexer(folder, ocr=False)
    for row_id in [collection.catalog.at_path(str(folder / clip.path.name)).id for clip in clips[:2]]:
        moments = collection.catalog.moments.children([row_id])
        assert moments and all(collection.vectors_of(i) is not None for i in moments)
    np.testing.assert_equal(collection.stats().vectors, collection.stats().moments * collection.model.queries)


@pytest.mark.slow  # indexers killed in the middle, each a process
def test_a_run_killed_mid_video_resumes_with_every_moment_once(tmp_path, clips, tiny_dirs):
    """Killed while committing a batch that holds a video, then after a commit: the next run
    indexes what was lost, and each video has its moments exactly once."""
    folder = _library(tmp_path, clips, images=4)  # one batch, then a batch a video (4 or more moments)
    index = tmp_path / "index"

    def run(mode: str, n: int) -> subprocess.CompletedProcess:
        argv = [sys.executable, str(HARNESS), mode, str(n), "--", "index", str(folder), "--index", str(index),
                "--model", str(tiny_dirs["opt"]), "--json", "--batch-size", "4", "--workers", "1", "--no-ocr"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=300)

    seen = []
    for mode, n in (("in-commit", 4), ("after-commit", 1)):
        assert run(mode, n).returncode == -signal.SIGKILL
        with sqlite3.connect(index / "catalog.db") as db:
            seen.append(db.execute("SELECT count(*) FROM images WHERE media = 'video' AND parent IS NULL")
                        .fetchone()[0])
    assert seen == [0, 1]  # killed inside the first video's commit: none; after the next: one
    final = run("none", 0)
    assert final.returncode == 0, final.stderr
    collection = Collection.open(index)
    try:
        stats = collection.stats()
        assert (stats.images, stats.videos, stats.failed) == (4, len(clips), 0)
        ids, _ = all_vectors(collection)
        assert len(ids) == len(set(ids.tolist())) == stats.images + stats.moments
        for clip in clips:
            video = collection.catalog.at_path(str(folder / clip.path.name))
            starts = [m.start_s for m in collection.catalog.moments.of(video.id)]
            assert len(starts) == len(set(starts)) >= len(clip.shots)
        with sqlite3.connect(index / "catalog.db") as db:
            orphans = db.execute("SELECT count(*) FROM images WHERE parent IS NOT NULL AND parent NOT IN "
                                 "(SELECT id FROM images)").fetchone()[0]
        assert orphans == 0
    finally:
        collection.close()
