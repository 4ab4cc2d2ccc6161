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
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import partial

from search.media import ocr
from search.records import ImageFile

from .steps import decode


def watch_parent(parent: int) -> None:
    """Worker-process initializer: exit once the indexing process is gone (say, killed), rather
    than linger blocked on a queue whose other end no longer exists."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def decoded(files: list[ImageFile], workers: int, window: int, *, ocr: bool = False) -> Iterator[ImageFile]:
    """`files` decoded (with `ocr`, their text read), in order: in `workers` processes up to
    `window` files ahead, or here when `workers` is 0."""
    step = partial(decode, ocr=ocr)
    if workers <= 0:
        yield from map(step, files)
        return
    with _pool(workers) as pool:
        yield from _bounded(pool, step, files, window)


def _bounded(pool: Executor, step: Callable[[ImageFile], ImageFile], files: list[ImageFile],
             window: int) -> Iterator[ImageFile]:
    pending: deque = deque()
    for file in files:
        pending.append(pool.submit(step, file))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def start_worker(parent: int) -> None:
    """Worker-process initializer: watch the parent (`watch_parent`), and read text on one
    thread, beside the model's threads in the parent."""
    watch_parent(parent)
    ocr.limit_threads(1)


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=start_worker, initargs=(os.getpid(),),
    )
