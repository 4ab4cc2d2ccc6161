"""Decoding worker processes: files decoded ahead of the model, in a bounded window.

Workers are spawned, not forked: they never inherit the parent's torch threads or model
memory, and as its direct children they notice when it dies. They import no torch, so
they start fast and stay small.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor

from search.indexing import decode
from search.records import ImageFile


def watch_parent(parent: int) -> None:
    """Worker-process initializer: exit once the indexing process is gone (say, killed), rather
    than linger blocked on a queue whose other end no longer exists."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def decoded(files: list[ImageFile], workers: int, window: int) -> Iterator[ImageFile]:
    """`files` decoded, in order: in `workers` processes up to `window` files ahead, or here
    when `workers` is 0."""
    if workers <= 0:
        yield from map(decode, files)
        return
    with _pool(workers) as pool:
        yield from _bounded(pool, files, window)


def _bounded(pool: Executor, files: list[ImageFile], window: int) -> Iterator[ImageFile]:
    pending: deque = deque()
    for file in files:
        pending.append(pool.submit(decode, file))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=watch_parent, initargs=(os.getpid(),),
    )
