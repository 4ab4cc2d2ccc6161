"""Model work off the event loop, behind a bounded queue.

One worker thread runs model calls in order; at most `queue_size` requests wait for it.
One more gets `Saturated` (a 503 with Retry-After) at once, instead of hanging. Requests
that ask the model many times (`in_turns`: where conditions) have a pool of their own,
`heavy_size` at once (a quarter of `queue_size`, at least one), so that they never take a
plain request's place: beyond it they get the 503. Each of their calls waits its turn behind
the calls already queued, so a plain request waits behind at most one of them.

`gather` is for calls that batch (text searches): the requests that arrive while the
worker is busy wait together, and the worker serves them with one call. `in_turns` is for a
request that asks the model many times: its calls queue one at a time among the others.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 16


class Saturated(Exception):
    """Too many model requests are waiting."""


class ModelRunner:
    def __init__(self, queue_size: int, heavy_size: int | None = None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._limit = queue_size
        self._heavy_limit = heavy_size or max(1, queue_size // 4)
        self._waiting = 0  # requests and job batches waiting or running
        self._heavy = 0  # `in_turns` requests at work
        self._counting = threading.Lock()  # guards _waiting: job threads count too
        self._lock = threading.Lock()  # guards _gathered, shared with the worker
        self._gathered: dict[Callable, list[tuple[object, asyncio.Future]]] = {}

    @property
    def waiting(self) -> int:
        return self._waiting

    async def run(self, fn: Callable[..., T], /, *args, **kwargs) -> T:
        self._admit()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        finally:
            self._leave()

    def turn(self, work: Callable[[], T]) -> T:
        """From a thread other than the event loop's (an index job): run `work` on the model
        worker in its turn, counted among the waiting, and return its result."""
        with self._counting:
            self._waiting += 1
        try:
            return self._executor.submit(work).result()
        finally:
            self._leave()

    async def gather(self, fn: Callable[[Sequence], Sequence[R | Exception]], item) -> R:
        """`fn(items)` returns one outcome an item, a result or the exception to raise for
        it; the item waits with the others for `fn` and is served in the same call."""
        self._admit()
        try:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            with self._lock:
                waiting = self._gathered.setdefault(fn, [])
                waiting.append((item, future))
                first = len(waiting) == 1
            if first:  # the first to wait queues the call that serves them all
                loop.run_in_executor(self._executor, self._serve, fn, loop)
            outcome = await future
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        finally:
            self._leave()

    async def in_turns(self, fn: Callable[[object], T], engine) -> T:
        """`fn(engine)` on a thread of its own, each of its model calls queued for the worker
        in its turn (`TakingTurns`): a request that asks the model many times (where
        conditions) holds it one call at a time, and the requests that arrive meanwhile are
        served between its calls instead of after all of them. Admitted in the pool of its
        own (`heavy_size`), not among the plain requests."""
        with self._counting:
            if self._heavy >= self._heavy_limit:
                raise Saturated
            self._heavy += 1
        try:
            return await asyncio.to_thread(fn, TakingTurns(engine, self._on_worker))
        finally:
            with self._counting:
                self._heavy -= 1

    def _on_worker(self, work: Callable[[], T]) -> T:
        return self._executor.submit(work).result()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _admit(self) -> None:
        with self._counting:
            if self._waiting >= self._limit:
                raise Saturated
            self._waiting += 1

    def _leave(self) -> None:
        with self._counting:
            self._waiting -= 1

    def _serve(self, fn: Callable, loop: asyncio.AbstractEventLoop) -> None:
        """On the worker: take every item waiting for `fn` and answer each future."""
        with self._lock:
            waiting = self._gathered.pop(fn, [])
        for start in range(0, len(waiting), MAX_BATCH):
            batch = waiting[start : start + MAX_BATCH]
            try:
                outcomes = list(fn([item for item, _ in batch]))
            except Exception as exc:  # each request of the batch gets it
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                loop.call_soon_threadsafe(_settle, future, outcome)


def _settle(future: asyncio.Future, outcome) -> None:
    if not future.done():  # the request may have gone (its client hung up)
        future.set_result(outcome)


class TakingTurns:
    """An engine whose method calls run on the model worker, each in its turn."""

    def __init__(self, engine, turn: Callable[[Callable[[], T]], T]) -> None:
        self._engine, self._turn = engine, turn

    def __getattr__(self, name: str):
        value = getattr(self._engine, name)
        if not callable(value):
            return value
        return lambda *args, **kwargs: self._turn(functools.partial(value, *args, **kwargs))
