"""Background index jobs: one at a time, in a worker thread, with progress and a summary."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from indexer.guard import DEFAULT_SHARE
from search.errors import InputError, describe
from search.schemas import IndexSummary

KEEP_ENDED = 200  # finished jobs remembered (`GET /api/jobs/{id}`), the newest


@dataclass
class Job:
    id: str
    paths: list[str]
    keep_features: bool = False
    ocr: bool = True
    status: str = "queued"  # queued, running, done, failed
    done: int = 0
    total: int | None = None
    summary: IndexSummary | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    exclude: tuple[str, ...] = ()
    max_removals: float | None = DEFAULT_SHARE  # `indexer.guard`
    refused: bool = False  # failed on bad input (a root missing or empty): nothing was changed
    finished: threading.Event = field(default_factory=threading.Event, repr=False)


class JobManager:
    def __init__(self, work: Callable[[Job], IndexSummary]) -> None:
        self._work = work
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-job")

    def submit(self, paths: list[str], *, keep_features: bool = False, ocr: bool = True,
               exclude: tuple[str, ...] = (), max_removals: float | None = DEFAULT_SHARE) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], paths=paths, keep_features=keep_features, ocr=ocr,
                  exclude=exclude, max_removals=max_removals)
        with self._lock:
            self._jobs[job.id] = job
            ended = [key for key, old in self._jobs.items() if old.finished.is_set()]
            for key in ended[: max(0, len(ended) - KEEP_ENDED)]:  # a watch's passes, each a job
                del self._jobs[key]
        self._executor.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def _run(self, job: Job) -> None:
        job.status = "running"
        try:
            job.summary = self._work(job)
            job.status = "done"
        except Exception as exc:  # the job fails, the server goes on; its error is one line
            job.error, job.refused = describe(exc), isinstance(exc, InputError)
            job.status = "failed"
        finally:
            job.finished_at = datetime.now(UTC)
            job.finished.set()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
