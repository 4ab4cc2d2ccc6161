"""Watch folders: a real watcher (watchfiles' events, or polling) over a temporary folder,
indexing through the real pipeline with a tiny model; and the mount-safety guards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.guard import MARKER
from indexer.pipeline import IndexOptions, index_paths
from indexer.watching import Watcher, WatchOptions
from indexer.watching.mounts import filesystem_of, needs_polling
from search.collection import Collection
from search.query.options import SearchOptions
from search.query.searcher import Searcher
from tests.support.corpus import write_corpus

FAST = dict(settle=0.6, interval=0.3, retry=0.3, debounce_ms=200, reconcile=3600.0)


class Running:
    """A Watcher on a thread over `root`, its passes through `index_paths` on a collection
    of its own; each pass leaves the catalog's rows under the root in `rows` (by path), and
    every row it ever saw in `seen`."""

    def __init__(self, root: Path, index: Path, engine, *, poll: bool) -> None:
        self.collection = Collection.open(index, create=True)
        self.root, self.rows, self.seen, self.lines = root, {}, [], []
        options = IndexOptions(workers=0, ocr=False, batch_size=4)

        def run_pass(folders):
            summary = index_paths(self.collection, engine, folders, options)
            self.rows = self.collection.catalog.under(str(root))
            self.seen += list(self.rows.values())
            return summary

        self.watcher = Watcher([root], run_pass, WatchOptions(poll=poll, ignore=(index,), **FAST),
                               notify=self.lines.append)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.watcher.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def until(self, condition, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"{what}; watch said: {self.lines[-5:]}"
            time.sleep(0.1)

    def paused(self) -> list:
        return self.watcher.status()[1]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.collection.close()


@pytest.fixture
def watching(engines, tmp_path):
    started = []

    def start(root: Path, *, poll: bool = False) -> Running:
        started.append(Running(root, tmp_path / "index", engines["opt"], poll=poll))
        return started[-1]

    yield start
    for running in started:
        running.close()


def _write_slowly(source: Path, target: Path, parts: int = 4, pause: float = 0.3) -> None:
    """`source`'s bytes written to `target` a part at a time, as a copy over a slow link."""
    data = source.read_bytes()
    step = len(data) // parts + 1
    with open(target, "wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()
            os.fsync(handle.fileno())
            time.sleep(pause)


@pytest.mark.parametrize("poll", [False, True], ids=["events", "polling"])
def test_watch_follows_a_folder_and_pauses_when_it_looks_unmounted(watching, engines, tmp_path, poll):
    root = tmp_path / "photos"
    first = write_corpus(root, 4)
    extra = write_corpus(tmp_path / "elsewhere", 3, seed=7, side=48)
    running = watching(root, poll=poll)
    assert running.watcher.status()[0][0].mode == ("polling" if poll else "events")
    running.until(lambda: len(running.rows) == 4, "the first pass indexes the folder")
    assert (root / MARKER).is_file()

    (root / "sub").mkdir()  # images copied in become indexed
    for path in extra[:2]:
        shutil.copy(path, root / "sub" / path.name)
    running.until(lambda: len(running.rows) == 6, "copied images are indexed")

    slow = root / "sub" / "slow.png"  # a file still being written is indexed only whole
    _write_slowly(extra[2], slow)
    running.until(lambda: str(slow) in running.rows, "a slowly written file is indexed")
    assert running.rows[str(slow)].size == extra[2].stat().st_size
    assert {row.status for row in running.seen if row.path == str(slow)} == {"ok"}

    moved = running.rows[str(first[0])]  # a moved file keeps its id
    os.rename(first[0], root / "sub" / "moved.png")
    running.until(lambda: str(root / "sub" / "moved.png") in running.rows, "a moved file is followed")
    assert running.rows[str(root / "sub" / "moved.png")].id == moved.id
    assert str(first[0]) not in running.rows

    first[1].unlink()  # a deleted file leaves
    running.until(lambda: str(first[1]) not in running.rows, "a deleted file leaves the index")
    assert len(running.rows) == 6

    (root / MARKER).unlink()  # the marker gone: nothing removed, paused with the reason
    first[2].unlink()
    running.until(lambda: running.paused(), "a root without its marker pauses")
    assert "marker" in running.paused()[0].reason
    assert str(first[2]) in running.rows
    shutil.copy(extra[0], root / "back.png")  # adds still go on while paused
    running.until(lambda: str(root / "back.png") in running.rows, "a paused root still gains new files")
    assert str(first[2]) in running.rows
    (root / MARKER).write_text("")  # the marker back: the root resumes, the vanished image leaves
    running.until(lambda: not running.paused() and str(first[2]) not in running.rows, "the root resumes")

    for path in root.rglob("*.png"):  # the root emptied: nothing removed, paused with the reason
        path.unlink()
    running.until(lambda: running.paused() and "no images" in running.paused()[0].reason,
                  "an emptied root pauses")
    time.sleep(1.0)
    assert len(running.rows) == 6
    ids = {row.id for row in running.rows.values()}
    running.close()
    collection = Collection.open(tmp_path / "index")  # what the watch indexed is searchable
    try:
        hits = Searcher(collection, engines["opt"]).search("a red circle", SearchOptions(k=50))
    finally:
        collection.close()
    assert {hit.id for hit in hits} == ids


def test_a_paused_root_resumes_when_its_marker_is_back(watching, tmp_path):
    root = tmp_path / "photos"
    paths = write_corpus(root, 3)
    running = watching(root, poll=True)
    running.until(lambda: len(running.rows) == 3, "the first pass indexes the folder")
    (root / MARKER).unlink()
    paths[0].unlink()
    running.until(lambda: running.paused(), "a root without its marker pauses")
    assert str(paths[0]) in running.rows
    (root / MARKER).write_text("")
    running.until(lambda: not running.paused(), "the root resumes with its marker back")
    running.until(lambda: str(paths[0]) not in running.rows, "the vanished image then leaves")


def test_removal_cap_keeps_the_images_and_pauses(indexer, tmp_path):
    root = tmp_path / "photos"
    paths = write_corpus(root, 14)
    indexer(root, ocr=False)
    for path in paths[:12]:
        path.unlink()
    summary, collection = indexer(root, ocr=False)
    assert summary.removed == 0 and len(summary.paused) == 1
    assert "12 of its 14 images vanished" in summary.paused[0].reason
    assert len(collection.catalog.under(str(root))) == 14
    summary, collection = indexer(root, ocr=False, max_removals=1.0)
    assert (summary.removed, summary.paused) == (12, [])
    assert len(collection.catalog.under(str(root))) == 2


def test_a_missing_marker_holds_removals_back_until_the_images_are_whole(indexer, tmp_path):
    root = tmp_path / "photos"
    paths = write_corpus(root, 4)
    indexer(root, ocr=False)
    (root / MARKER).unlink()
    hidden = paths[0].rename(tmp_path / "aside.png")
    summary, collection = indexer(root, ocr=False)
    assert summary.removed == 0 and "marker" in summary.paused[0].reason
    assert not (root / MARKER).exists()
    hidden.rename(paths[0])  # every indexed image in place: the marker comes back
    summary, _ = indexer(root, ocr=False)
    assert summary.paused == [] and (root / MARKER).is_file()


def test_a_sub_path_run_keeps_the_images_outside_it(indexer, tmp_path):
    root = tmp_path / "photos"
    outside = write_corpus(root, 3)
    inside = write_corpus(root / "sub", 2, seed=5)
    indexer(root, ocr=False)
    inside[0].unlink()
    inside[1].unlink()  # the sub-folder emptied: its images leave, the root's stay
    summary, collection = indexer(root / "sub", ocr=False)
    assert (summary.removed, summary.paused) == (2, [])
    assert set(collection.catalog.under(str(root))) == {str(p) for p in outside}


@pytest.mark.slow  # a process loading the model
def test_the_watch_command_follows_a_folder_until_ctrl_c(tiny_dirs, tmp_path):
    root, index, log = tmp_path / "photos", tmp_path / "index", tmp_path / "watch.log"
    write_corpus(root, 2)
    extra = write_corpus(tmp_path / "elsewhere", 1, seed=9)
    argv = [sys.executable, "-m", "cli.main", "watch", str(root), "--index", str(index), "--model",
            str(tiny_dirs["opt"]), "--no-ocr", "--workers", "0", "--settle", "0.5", "--batch-size", "4",
            "--json"]
    with open(log, "w") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   preexec_fn=_ctrl_c_stops)
    try:
        _until(lambda: "added 2" in log.read_text(), log)
        shutil.copy(extra[0], root / "new.png")
        _until(lambda: f"watch: {root}: added 1," in log.read_text(), log)
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    assert code == 0, log.read_text()
    passes = [json.loads(line) for line in process.stdout.read().splitlines()]
    assert [(p["folders"], p["added"]) for p in passes] == [([str(root)], 2), ([str(root)], 1)]
    with sqlite3.connect(index / "catalog.db") as db:
        assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 3


def _ctrl_c_stops() -> None:
    """In the child: Ctrl-C as a terminal delivers it. A process started with SIGINT ignored
    (a test runner's worker may ignore it, as a shell's background jobs do) passes that on,
    and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _until(condition, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_a_file_moved_within_its_disk_is_matched_by_inode_without_a_read(indexer, tmp_path):
    root = tmp_path / "photos"
    paths = write_corpus(root, 3)
    _, collection = indexer(root, ocr=False)
    before = collection.catalog.at_path(str(paths[0]))
    assert before.inode == paths[0].stat().st_ino
    stat = paths[0].stat()
    target = root / "renamed.png"
    os.rename(paths[0], target)
    with open(target, "r+b") as handle:  # the bytes changed in place, size and mtime kept: the
        handle.seek(stat.st_size - 1)     # move is matched by (size, mtime, inode), never read
        handle.write(b"\x00")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    summary, collection = indexer(root, ocr=False)
    assert (summary.moved, summary.added, summary.removed, summary.model_calls) == (1, 0, 0, 0)
    assert collection.catalog.at_path(str(target)).id == before.id


def test_a_file_replaced_with_the_same_size_and_mtime_is_read_again(indexer, tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(4)
    first, other = root / "a.bmp", tmp_path / "other.bmp"  # BMPs of one size: the same byte count
    for path in (first, other, root / "b.bmp"):
        Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(path)
    _, collection = indexer(root, ocr=False)
    before = collection.catalog.at_path(str(first))
    stat = first.stat()
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.rename(other, first)  # a rename over it: a new inode, the same size and mtime
    summary, collection = indexer(root, ocr=False)
    assert (summary.updated, summary.unchanged) == (1, 1)
    assert collection.catalog.at_path(str(first)).content_hash != before.content_hash


def test_network_filesystems_are_polled(tmp_path):
    table = tmp_path / "mounts"
    table.write_text("/dev/sda1 / ext4 rw 0 0\n"
                     "server:/photos /mnt/nas\\040photos nfs4 rw 0 0\n"
                     "//host/share /mnt/nas\\040photos/smb cifs rw 0 0\n")
    assert needs_polling(Path("/home/me"), str(table)) is None
    assert "nfs4" in needs_polling(Path("/mnt/nas photos/2026"), str(table))
    assert "cifs" in needs_polling(Path("/mnt/nas photos/smb/a"), str(table))
    assert filesystem_of(Path("/mnt/nas photosX"), str(table)) == "ext4"


def test_a_root_gone_and_back_is_followed_by_events_again(watching, tmp_path):
    root = tmp_path / "photos"
    write_corpus(root, 3)
    extra = write_corpus(tmp_path / "elsewhere", 1, seed=8)
    running = watching(root)
    running.until(lambda: len(running.rows) == 3, "the first pass indexes the folder")
    root.rename(tmp_path / "away")  # unmounted, as far as the watcher can tell
    running.until(lambda: running.paused(), "a root gone pauses")
    assert "does not exist" in running.paused()[0].reason and len(running.rows) == 3
    shutil.copytree(tmp_path / "away", root, copy_function=shutil.copy2)  # mounted again: a new folder
    running.until(lambda: not running.paused(), "the root resumes once it is back")
    shutil.copy(extra[0], root / "new.png")  # seen by the events of the folder now there
    running.until(lambda: str(root / "new.png") in running.rows, "a new file is indexed after the pause")
