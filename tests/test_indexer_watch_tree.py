"""Excluded, hidden and ignored folders are never watched: the inotify watches a root's
events hold, read from the kernel (/proc/self/fdinfo), cover every other folder, and follow
folders made or removed later."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from indexer.watching.sources import Mode, follow
from indexer.watching.tree import watches

FOLDERS = ("a/b", "a/skipme/deep", "c/d", ".hidden/x", "index/parts")


@pytest.fixture
def root(tmp_path) -> Path:
    for folder in FOLDERS:
        (tmp_path / "root" / folder).mkdir(parents=True)
    return tmp_path / "root"


def _watched(root: Path, names: list[str]) -> list[str]:
    """Which of the folders `names` (under `root`) this process holds an inotify watch on."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                lines = [line for line in info if line.startswith("inotify")]
            inodes |= {int(line.split("ino:")[1].split()[0], 16) for line in lines}
        except OSError:
            continue
    return sorted(name for name in names if os.stat(root / name).st_ino in inodes)


def _until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_plan_watches_everything_but_the_skipped_folders(root):
    skipped = {str(root / "a" / "skipme"), str(root / ".hidden"), str(root / "index")}
    plan = watches(root, lambda path: path in skipped)
    assert plan.alone == [root / "a", root]  # above a skipped folder: their own entries only
    assert sorted(plan.whole) == [root / "a" / "b", root / "c"]
    assert watches(root / "c", lambda path: False).whole == [root / "c"]  # nothing skipped: one watch


def test_events_never_watch_a_skipped_folder_and_follow_new_ones(root):
    changed: list[set[str]] = []
    stop = threading.Event()
    follower = threading.Thread(target=follow, daemon=True, args=(root, Mode("events", ""),
                                lambda _, paths: changed.append(paths), stop), kwargs=dict(
        exclude=["skipme"], ignore=[root / "index"], interval=1.0, debounce_ms=50, said=print))
    every = ["", "a", "a/b", "a/skipme", "a/skipme/deep", "c", "c/d", ".hidden", ".hidden/x", "index",
             "index/parts"]
    try:
        follower.start()
        _until(lambda: _watched(root, every) == ["", "a", "a/b", "c", "c/d"])
        (root / "a" / "new").mkdir()  # beside a skipped folder: watched once it exists
        _until(lambda: "a/new" in _watched(root, every + ["a/new"]))
        (root / "a" / "new" / "photo.png").write_bytes(b"not yet a picture")
        _until(lambda: any(str(root / "a" / "new" / "photo.png") in paths for paths in changed))
        (root / "c" / "skipme").mkdir()  # a skipped folder made inside a watched one: no watch
        _until(lambda: _watched(root, ["c", "c/skipme"]) == ["c"])
        (root / "a" / "skipme" / "photo.png").write_bytes(b"x")
        time.sleep(0.5)
        assert not any("skipme" in path for paths in changed for path in paths)
    finally:
        stop.set()
        follower.join(timeout=10)
    assert not follower.is_alive()
