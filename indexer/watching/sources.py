"""Where a watched root's changes come from: file-system events (watchfiles), or a walk on a
schedule compared with the last one (polling). Either hands changed paths to `changed`.

Events are the cheap way on a local disk. A root is polled instead when it lives on a
network filesystem (`mounts`), when polling is asked for, or when the events cannot be had
(the inotify watch limit, `fs.inotify.max_user_watches`, is reached: Immich #15426); each
fallback is told once through `said`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..scan import excluded, walk
from .mounts import needs_polling
from .tree import Watches, watches

Changed = Callable[[Path, set[str]], None]  # (root, paths that changed under it)


@dataclass
class Mode:
    """How a root is followed, and why (shown by `watch` and `GET /api/index/status`)."""

    mode: str  # "events" or "polling"
    why: str


def choose(root: Path, poll: bool) -> Mode:
    if poll:
        return Mode("polling", "polling was asked for")
    reason = needs_polling(root)
    if reason:
        return Mode("polling", reason)
    return Mode("events", "a local disk: file-system events")


def follow(root: Path, mode: Mode, changed: Changed, stop: threading.Event, *, exclude: Sequence[str],
           ignore: Sequence[Path], interval: float, debounce_ms: int, said: Callable[[str], None]) -> None:
    """Hand the root's changes to `changed` until `stop` is set; events fall back to polling
    (`mode` says so) when the watcher cannot start or fails."""
    if mode.mode == "events":
        try:
            _events(root, changed, stop, exclude=exclude, ignore=ignore, debounce_ms=debounce_ms)
            return
        except (OSError, RuntimeError) as exc:  # watch limit, too many open files, a watcher error
            mode.mode, mode.why = "polling", f"file-system events failed ({_reason(exc)})"
            said(f"watch: {root}: polling every {interval:g} s: {mode.why}")
    _poll(root, changed, stop, exclude=exclude, ignore=ignore, interval=interval)


def _events(root: Path, changed: Changed, stop: threading.Event, *, exclude: Sequence[str],
            ignore: Sequence[Path], debounce_ms: int) -> None:
    """Events from the watches `tree.watches` sets: none on a skipped folder. A folder that
    comes or goes beside a skipped one, or a skipped folder made inside a watched one, changes
    the watches: they are set again."""
    def skipped(path: str) -> bool:
        return _hidden(path, root) or excluded(path, root, exclude) or any(
            Path(path).is_relative_to(folder) for folder in ignore)

    while not stop.is_set():
        watching = _Watching(root, changed, skipped, debounce_ms)
        watching.run(watches(root, skipped), stop)


class _Watching:
    """One set of watches, until `stop` is set or the watches must change (`again`)."""

    def __init__(self, root: Path, changed: Changed, skipped: Callable[[str], bool],
                 debounce_ms: int) -> None:
        self.root, self.changed, self.skipped, self.debounce_ms = root, changed, skipped, debounce_ms
        self.again = threading.Event()
        self.failures: list[BaseException] = []

    def run(self, plan: Watches, stop: threading.Event) -> None:
        groups = [(folders, flat) for folders, flat in ((plan.whole, False), (plan.alone, True)) if folders]
        threads = [threading.Thread(target=self._watch, args=group, daemon=True) for group in groups]
        for thread in threads:
            thread.start()
        while not self.again.wait(0.2):
            if stop.is_set() or self.failures or not any(thread.is_alive() for thread in threads):
                self.again.set()
        for thread in threads:
            thread.join()
        if self.failures:
            raise self.failures[0]

    def _watch(self, folders: list[Path], flat: bool) -> None:
        """watchfiles over `folders` (with what is under them, unless `flat`)."""
        import watchfiles

        try:
            for changes in watchfiles.watch(*folders, watch_filter=self._wanted, debounce=self.debounce_ms,
                                            step=50, stop_event=self.again, recursive=not flat,
                                            raise_interrupt=False, rust_timeout=1000):
                paths = {path for _, path in changes}
                self.changed(self.root, paths)
                if flat and any(Path(path).is_dir() or not Path(path).exists() for path in paths):
                    self.again.set()  # a folder came or went beside a skipped one
        except (OSError, RuntimeError) as exc:
            self.failures.append(exc)

    def _wanted(self, change, path: str) -> bool:
        if not self.skipped(path):
            return True
        if getattr(change, "name", "") == "added" and Path(path).is_dir():
            self.again.set()  # a skipped folder made (or renamed) inside a watched one: unwatch it
        return False


def _poll(root: Path, changed: Changed, stop: threading.Event, *, exclude: Sequence[str],
          ignore: Sequence[Path], interval: float) -> None:
    """Walk the root every `interval` seconds (as the index run walks it: hidden and excluded
    paths skipped) and hand on the files whose size or mtime moved, or that came or went."""
    seen = _snapshot(root, exclude, ignore)
    while not stop.wait(interval):
        now = _snapshot(root, exclude, ignore)
        paths = {path for path in seen.keys() | now.keys() if seen.get(path) != now.get(path)}
        seen = now
        if paths:
            changed(root, paths)


def _snapshot(root: Path, exclude: Sequence[str], ignore: Sequence[Path]) -> dict[str, tuple[int, float]]:
    return {file.path: (file.size, file.mtime) for file in walk(root, exclude)
            if not any(Path(file.path).is_relative_to(folder) for folder in ignore)}


def _hidden(path: str, root: Path) -> bool:
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return False
    return any(part.startswith(".") for part in parts)


def _reason(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if "limit" in text.lower() or getattr(exc, "errno", None) == 28:  # ENOSPC: out of inotify watches
        return f"the inotify watch limit is reached, raise fs.inotify.max_user_watches: {text}"
    return text
