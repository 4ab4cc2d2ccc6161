"""Background index jobs: one at a time, in a worker thread, with progress and a summary."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from search.errors import describe
from search.schemas import IndexSummary


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


class JobManager:
    def __init__(self, work: Callable[[Job], IndexSummary]) -> None:
        self._work = work
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-job")

    def submit(self, paths: list[str], *, keep_features: bool = False, ocr: bool = True) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], paths=paths, keep_features=keep_features, ocr=ocr)
        with self._lock:
            self._jobs[job.id] = job
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
            job.error = describe(exc)
            job.status = "failed"
        finally:
            job.finished_at = datetime.now(UTC)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
