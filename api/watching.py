"""`serve --watch`: the server follows roots (`indexer.watching`), each pass an index job of
the server's (`api.jobs`): its batches take their turns with the searches, and the server's
collection refreshes after it, as after any index job."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from indexer.guard import DEFAULT_SHARE
from indexer.watching import Watcher, WatchOptions
from search.errors import InputError
from search.schemas import IndexSummary

from .jobs import JobManager

log = logging.getLogger("blip2_search")


@dataclass(frozen=True)
class WatchSetup:
    roots: tuple[Path, ...]
    options: WatchOptions
    max_removals: float | None = DEFAULT_SHARE
    ocr: bool = True


class Watching:
    """The server's watcher, on a thread of its own from construction to `close`."""

    def __init__(self, jobs: JobManager, setup: WatchSetup) -> None:
        self._jobs, self._setup = jobs, setup
        self.watcher = Watcher(setup.roots, self._pass, setup.options, notify=log.warning)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.watcher.run, args=(self._stop,), daemon=True,
                                        name="watch")
        self._thread.start()

    def _pass(self, folders: list[Path]) -> IndexSummary:
        setup = self._setup
        job = self._jobs.submit([str(folder) for folder in folders], ocr=setup.ocr,
                                exclude=setup.options.exclude, max_removals=setup.max_removals)
        while not job.finished.wait(0.5):
            if self._stop.is_set():  # the server stops: the job ends with it
                raise RuntimeError("the server stopped")
        if job.refused:
            raise InputError(job.error or "refused")
        if job.summary is None:
            raise RuntimeError(job.error or "the index job failed")
        return job.summary

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
