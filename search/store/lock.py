"""One writer at a time per index: a lock file in the index folder, and on PostgreSQL an
advisory lock in the database too (writers from other folders or machines sharing it).

The lock file names its holder (process, host, since when, doing what), so a second writer
can say who it waits for, or, told not to wait, who holds the index. The kernel releases
the lock when its holder dies, however it dies.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..display import one_line
from ..errors import SearchError

LOCK = ".writer.lock"
OPENING = ".opening.lock"  # held for the moment a catalog is created or migrated


class IndexBusy(SearchError):
    """Another writer holds the index, and the caller would not wait."""


@contextmanager
def exclusive(folder: Path, *, wait: bool = True, waiting: Callable[[str], None] | None = None,
              name: str = LOCK) -> Iterator[None]:
    """Hold `folder`'s writer lock (or the lock `name`): at once when it is free; else wait
    for it (telling `waiting` who holds it), or, with `wait` False, raise `IndexBusy` naming
    the holder."""
    descriptor = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try(descriptor):
            holder = _holder(descriptor)
            if not wait:
                raise IndexBusy(f"another writer holds the index at {folder} ({holder}); "
                                "nothing was changed: run again when it is done") from None
            if waiting is not None:
                waiting(f"waiting for another writer to finish with the index at {folder} ({holder})")
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, _me().encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only unnamed
            pass
        yield
    finally:
        os.close(descriptor)  # releases the lock


def held(folder: Path) -> bool:
    """Some writer holds `folder`'s lock now (a reader then keeps the view it has)."""
    try:
        descriptor = os.open(folder / LOCK, os.O_RDONLY)
    except OSError:  # no lock file yet, or a folder this reader may not write: no writer
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def _try(descriptor: int, attempts: int = 3) -> bool:
    """The exclusive lock without waiting; a few tries a moment apart, because a reader that
    checks `held` holds a shared lock for an instant."""
    for attempt in range(attempts):
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt < attempts - 1:
                time.sleep(0.05)
    return False


def _me() -> str:
    command = " ".join(os.path.basename(part) if i == 0 else part for i, part in enumerate(sys.argv[:3]))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    return f"pid {os.getpid()} on {socket.gethostname()} since {started}: {one_line(command)}"  # any bytes


def _holder(descriptor: int) -> str:
    text = os.pread(descriptor, 512, 0).decode("utf-8", "replace").strip()
    return text or "a process that has not said who it is"
