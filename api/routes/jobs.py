"""Index jobs: start indexing folders in the background, and follow them."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path

from ..deps import State, read_access, write_access
from ..jobs import Job
from ..schemas import IndexRequest, JobInfo, errors

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


@router.get("/jobs/{job_id}", response_model=JobInfo, dependencies=[Depends(read_access)],
            responses=errors(404))
def job(state: State, job_id: Annotated[str, Path(max_length=64)]) -> JobInfo:
    found = state.jobs.get(job_id)
    if found is None:
        raise HTTPException(404, f"no job with id {job_id}")
    return _info(found)
