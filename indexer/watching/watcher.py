"""Following watched roots: their changes, once they hold still, indexed by a pass over
the folders they touched; a full pass now and then (the reconcile) for whatever the events
missed; roots paused (nothing removed) while they look unmounted or lose too many images.

A pass is `run_pass(folders)`: the CLI's is `index_paths` over the folders, the server's an
index job. The pipeline's own checks keep a pass safe (`indexer.guard`); the watcher keeps
what they said, and tries a paused root again (a full pass) every `retry` seconds and on
each of its changes.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from search.errors import InputError
from search.schemas import IndexSummary, PausedRoot, WatchedRoot

from .sources import Mode, choose, follow

Pass = Callable[[list[Path]], IndexSummary]  # raises InputError when a root cannot be indexed
COUNTS = ("added", "updated", "moved", "removed", "unchanged", "failed")


@dataclass(frozen=True)
class WatchOptions:
    poll: bool = False  # poll every root, whatever its filesystem
    interval: float = 10.0  # seconds between polls
    retry: float = 60.0  # seconds between full passes over a paused root (its changes also try it)
    debounce_ms: int = 1000  # events grouped over this long (watchfiles' debounce)
    settle: float = 2.0  # seconds a changed file's size and mtime must hold still before its pass
    reconcile: float = 3600.0  # seconds between full passes over each root
    exclude: tuple[str, ...] = ()
    ignore: tuple[Path, ...] = ()  # folders whose changes are never followed (the index folder)


class Watcher:
    """Follows `roots` (each indexed first) until the `stop` given to `run` is set."""

    def __init__(self, roots: Sequence[Path], run_pass: Pass, options: WatchOptions,
                 notify: Callable[[str], None] | None = None) -> None:
        self.roots = sorted({Path(root).expanduser().resolve() for root in roots})
        self.options, self._run_pass, self._notify = options, run_pass, notify or (lambda line: None)
        self._modes = {root: choose(root, options.poll) for root in self.roots}
        self._paused: dict[Path, PausedRoot] = {}
        self._pending: dict[Path, dict[str, tuple[tuple | None, float]]] = {r: {} for r in self.roots}
        self._inbox: queue.SimpleQueue[tuple[Path, set[str]]] = queue.SimpleQueue()
        self._last_full: dict[Path, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sources: dict[Path, threading.Event] = {}  # each root's source, stopped by its event

    def status(self) -> tuple[list[WatchedRoot], list[PausedRoot]]:
        with self._lock:
            watching = [WatchedRoot(root=str(root), mode=mode.mode, why=mode.why)
                        for root, mode in self._modes.items()]
            return watching, list(self._paused.values())

    def run(self, stop: threading.Event) -> None:
        """Start following each root, index it, then run the passes its changes call for."""
        self._stop = stop
        try:
            for root, mode in self._modes.items():
                if mode.mode == "polling":
                    self._notify(f"watch: {root}: polling every {self.options.interval:g} s: {mode.why}")
                self._start(root)
            for root in self.roots:
                self._pass(root, [root])
            tick = max(0.05, min(0.5, self.options.settle / 4))
            while not stop.wait(tick):
                self._drain()
                for root in self.roots:
                    self._step(root, time.monotonic())
        finally:  # however it ends (Ctrl-C in the CLI): the sources stop with it
            for source in self._sources.values():
                source.set()

    def _start(self, root: Path) -> None:
        """Follow the root on a thread of its own (again after a pause: the events of a folder
        unmounted or removed stop for good, and a folder mounted there again needs new ones)."""
        if root in self._sources:
            self._sources[root].set()
        self._sources[root] = stop = threading.Event()
        threading.Thread(target=self._follow, args=(root, self._modes[root], stop), daemon=True,
                         name=f"watch {root}").start()

    def _follow(self, root: Path, mode: Mode, stop: threading.Event) -> None:
        options = self.options
        follow(root, mode, lambda r, paths: self._inbox.put((r, paths)), stop, exclude=options.exclude,
               ignore=options.ignore, interval=options.interval, debounce_ms=options.debounce_ms,
               said=self._notify)

    def _drain(self) -> None:
        now = time.monotonic()
        while True:
            try:
                root, paths = self._inbox.get_nowait()
            except queue.Empty:
                return
            for path in paths:
                self._pending[root][path] = (_signature(path), now)

    def _step(self, root: Path, now: float) -> None:
        """The pass this root is due, if any: its settled changes, a full pass when it is
        paused (every `retry`) or due a reconcile; none while a change is settling."""
        folders = self._settled(root, now)
        if folders is None:
            return
        since = now - self._last_full.get(root, 0.0)
        if root in self._paused:
            if folders or since >= self.options.retry:
                self._pass(root, [root])
        elif since >= self.options.reconcile:
            self._pass(root, [root])
        elif folders:
            self._pass(root, sorted(folders))

    def _settled(self, root: Path, now: float) -> set[Path] | None:
        """The folders touched by the root's changes once every one holds still (then they
        are taken), or None while one does not: a file being written is indexed only whole."""
        pending = self._pending[root]
        still = True
        for path, (signature, since) in list(pending.items()):
            current = _signature(path)
            if current != signature:
                pending[path] = (current, now)
                still = False
            elif now - since < self.options.settle:
                still = False
        if not still:
            return None
        folders = {_folder(Path(path), root) for path in pending}
        pending.clear()
        return folders

    def _pass(self, root: Path, folders: list[Path]) -> None:
        full = folders == [root]
        if full:
            self._last_full[root] = time.monotonic()
        try:
            summary = self._run_pass(folders)
        except InputError as exc:  # the root is gone, or empty: nothing was changed
            self._pause(root, str(exc))
            return
        except Exception as exc:  # a pass that fails leaves the watch going; the next one tries again
            if not self._stop.is_set():
                self._notify(f"watch: {root}: the pass failed: {type(exc).__name__}: {exc}")
            return
        if root not in self._paused or summary.unchanged != sum(getattr(summary, key) for key in COUNTS):
            where = ", ".join(str(folder) for folder in folders)  # a paused root's quiet tries say nothing
            counts = ", ".join(f"{key} {getattr(summary, key)}" for key in COUNTS)
            self._notify(f"watch: {where}: {counts}; model calls {summary.model_calls}")
        if summary.paused:
            self._pause(root, summary.paused[0].reason)
        elif full and root in self._paused:
            with self._lock:
                del self._paused[root]
            self._notify(f"watch: {root}: resumed")
            if self._modes[root].mode == "events":
                self._start(root)

    def _pause(self, root: Path, reason: str) -> None:
        with self._lock:
            known = self._paused.get(root)
            if known is None or known.reason != reason:
                self._paused[root] = PausedRoot(root=str(root), reason=reason, since=time.time())
                self._notify(f"watch: {root}: paused, nothing removed: {reason}")


def _signature(path: str) -> tuple | None:
    """What must hold still: size and mtime (and the inode: a file replaced by a rename)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def _folder(path: Path, root: Path) -> Path:
    """The folder a pass over the change walks: the changed folder itself, else the file's,
    climbing to one that still exists (a folder deleted with its images)."""
    folder = path if path.is_dir() else path.parent
    while folder != root and not folder.is_dir() and folder.is_relative_to(root):
        folder = folder.parent
    return folder if folder.is_relative_to(root) else root
