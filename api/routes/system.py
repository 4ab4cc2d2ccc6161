"""Health, metrics, statistics, and the web page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse, Response

from .. import answers
from ..deps import State, read_access
from ..schemas import Health, ServerStats, errors

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["system"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Answers on the event loop, never behind model work."""
    return Health(status="ok")


@router.get("/metrics", response_class=Response, dependencies=[Depends(read_access)],
            responses=errors(401))
def metrics(state: State) -> Response:
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/api/stats", response_model=ServerStats, dependencies=[Depends(read_access)],
            responses=errors(401))
def stats(state: State) -> ServerStats:
    return answers.stats(state)


@router.get("/", response_class=FileResponse, include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")
