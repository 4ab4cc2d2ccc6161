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
    import watchfiles

    def wanted(change, path: str) -> bool:
        return not _hidden(path, root) and not excluded(path, root, exclude) and not any(
            Path(path).is_relative_to(folder) for folder in ignore)

    for changes in watchfiles.watch(root, watch_filter=wanted, debounce=debounce_ms, step=50,
                                    stop_event=stop, raise_interrupt=False, rust_timeout=1000):
        changed(root, {path for _, path in changes})


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
