"""Prometheus metrics: requests by route and status, and time per stage of the query path."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

STAGES = ("text_encode", "image_encode", "vector_search", "rerank", "generation")
CLIENT_CLOSED = 499  # a request whose client closed the connection before the response


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # one per app, so several apps never clash
        self.requests = Counter("blip2_search_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.stage_seconds = Histogram("blip2_search_stage_seconds", "Time per query stage", ["stage"],
                                       registry=self.registry)
        for stage in STAGES:
            self.stage_seconds.labels(stage)  # exported from the start, at zero

    @contextmanager
    def timer(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds.labels(stage).observe(time.perf_counter() - start)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestCounter:
    """Pure ASGI middleware counting responses by method, route template and status."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: dict[str, int | None] = {"code": None}

        async def record(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        failed = False
        try:
            await self.app(scope, receive, record)
        except BaseException:
            failed = True
            raise
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            # No response and no error: the client went away first (nginx's 499), not a 500.
            code = status["code"] or (500 if failed else CLIENT_CLOSED)
            self.metrics.requests.labels(scope["method"], path, str(code)).inc()
