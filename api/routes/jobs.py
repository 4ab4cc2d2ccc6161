"""Index jobs: start indexing folders in the background, and follow them; rescan one folder
of an indexed root; what is being indexed, watched and paused."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from indexer.guard import marked_root

from ..deps import State, read_access, write_access
from ..jobs import Job
from ..schemas import IndexRequest, IndexStatus, JobInfo, errors
from ..state import AppState

router = APIRouter(prefix="/api", tags=["index"], responses=errors(401, 422))


def _info(job: Job) -> JobInfo:
    return JobInfo(**job.__dict__)


@router.post("/index", status_code=202, response_model=JobInfo, dependencies=[Depends(write_access)],
             responses=errors(413))
def start_index(state: State, body: IndexRequest) -> JobInfo:
    missing = [p for p in body.paths if "\x00" in p or not FsPath(p).expanduser().is_dir()]
    if missing:
        raise HTTPException(422, f"not a folder on the server: {missing[0]}")
    return _info(state.jobs.submit(body.paths, keep_features=body.keep_features,
                                     ocr=body.ocr))


@router.post("/index/scan", status_code=202, response_model=JobInfo, dependencies=[Depends(write_access)])
def scan(state: State, path: Annotated[str, Query(min_length=1, max_length=4096)]) -> JobInfo:
    """Rescan one folder of a watched or indexed root (only it is walked)."""
    folder = FsPath(path).expanduser()
    if "\x00" in path or not folder.is_dir():
        raise HTTPException(422, f"not a folder on the server: {path}")
    folder = folder.resolve()
    if not _indexed(state, folder):
        raise HTTPException(422, f"{folder} is not inside an indexed root (index it first)")
    return _info(state.jobs.submit([str(folder)], exclude=_exclude(state)))


@router.get("/index/status", response_model=IndexStatus, dependencies=[Depends(read_access)])
def status(state: State) -> IndexStatus:
    jobs = state.jobs.all()
    active = next((job for job in jobs if job.status == "running"),
                  next((job for job in jobs if job.status == "queued"), None))
    watching, paused = state.watch.watcher.status() if state.watch else ([], [])
    last = next((job for job in reversed(jobs) if job.summary is not None), None)
    held = {p.root for p in paused}
    paused += [p for p in (last.summary.paused if last else []) if p.root not in held]
    return IndexStatus(active=_info(active) if active else None, watching=watching, paused=paused)


@router.get("/jobs/{job_id}", response_model=JobInfo, dependencies=[Depends(read_access)],
            responses=errors(404))
def job(state: State, job_id: Annotated[str, Path(max_length=64)]) -> JobInfo:
    found = state.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, f"no job with id {job_id}")
    return _info(found)


def _indexed(state: AppState, folder: FsPath) -> bool:
    """Inside a root the server watches, or one an index run marked (`indexer.guard`)."""
    watched = state.watch.watcher.roots if state.watch else []
    return any(folder.is_relative_to(root) for root in watched) or marked_root(folder) is not None


def _exclude(state: AppState) -> tuple[str, ...]:
    return state.watch.watcher.options.exclude if state.watch else ()
