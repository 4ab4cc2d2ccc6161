"""The FastAPI app: `create_app(settings)`; the engine loads once, in the lifespan hook.
`blip2-search serve` builds it from its settings and runs it under uvicorn."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from search import __version__
from search.collection import CollectionError
from search.config import Settings
from search.errors import ImageError, InputError, NotFound, SearchError

from . import mcp
from . import state as app_state
from .limits import BodyLimitMiddleware
from .metrics import Metrics, RequestCounter
from .routes import albums, duplicates, images, jobs, search, system
from .runner import Saturated

ERROR_STATUS = ((NotFound, 404), (ImageError, 422), (InputError, 422), (CollectionError, 409))


def create_app(settings: Settings, start: Callable[[Settings, Metrics], app_state.AppState] = app_state.start
               ) -> FastAPI:
    """The app over `start(settings, metrics)`'s state: the index and the engine in this
    process, or (`api.ray`) its vectors in shards and its engine in model parts."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.blip2 = await asyncio.to_thread(start, settings, metrics)
        try:
            async with mcp.over_http(app.state.blip2) as app.state.mcp:
                yield
        finally:
            await asyncio.to_thread(app.state.blip2.close)

    app = FastAPI(title="blip2-search", version=__version__, lifespan=lifespan,
                  default_response_class=AsciiJSON,
                  description="Image search on BLIP-2: text search, similar images, captions, questions.")
    routers = (search.router, images.router, albums.router, duplicates.router, jobs.router, system.router)
    for router in routers:
        app.include_router(router)
    app.add_route("/mcp", mcp.Endpoint(), include_in_schema=False)
    app.mount("/static", StaticFiles(directory=system.STATIC), name="static")
    app.add_exception_handler(SearchError, _search_error)
    app.add_exception_handler(Saturated, _saturated)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_middleware(BodyLimitMiddleware, max_bytes=int(settings.max_upload_mb * 2**20))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Content-Type", "X-API-Key"])
    app.add_middleware(RequestCounter, metrics=metrics)
    return app


class AsciiJSON(JSONResponse):
    """JSON escaped to ASCII: a response that echoes a request's text (an error naming a path
    or a question) is written even when that text holds a lone surrogate, which UTF-8 cannot
    encode (`{"question": "\\udcff"}` is valid JSON)."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


async def _search_error(request: Request, exc: SearchError) -> JSONResponse:
    status = next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 400)
    return AsciiJSON({"detail": str(exc)}, status_code=status)


async def _saturated(request: Request, exc: Saturated) -> JSONResponse:
    return AsciiJSON({"detail": "the model is busy; try again shortly"}, status_code=503,
                     headers={"Retry-After": "1"})


async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return AsciiJSON({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    return AsciiJSON({"detail": jsonable_encoder(exc.errors())}, status_code=422)
