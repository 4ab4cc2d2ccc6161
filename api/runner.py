"""Model work off the event loop, behind a bounded queue.

One worker thread runs model calls in order; at most `queue_size` requests wait for it.
One more gets `Saturated` (a 503 with Retry-After) at once, instead of hanging.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class Saturated(Exception):
    """Too many model requests are waiting."""


class ModelRunner:
    def __init__(self, queue_size: int) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._limit = queue_size
        self._waiting = 0  # touched only on the event loop, so no lock

    @property
    def waiting(self) -> int:
        return self._waiting

    async def run(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        if self._waiting >= self._limit:
            raise Saturated
        self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        finally:
            self._waiting -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
