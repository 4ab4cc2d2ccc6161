"""Running the app under uvicorn, guarded against slow and numerous clients.

uvicorn itself bounds neither how long a client may take to send a request nor how many
connections it accepts: a few hundred clients that open a connection and send a byte now
and then hold as many file descriptors for as long as they like, until `accept` fails
with "Too many open files" (logged at every attempt) and nothing, /healthz included, gets
through. `GuardedH11` gives each request `request_timeout` seconds from the connection (or
from the previous response) to arrive whole, headers and body, and closes connections past
`max_connections` as soon as they are accepted; file descriptors stay free, so the server
goes on answering as the slow ones expire.
"""

from __future__ import annotations

import asyncio
import logging
import resource

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from search.config import Settings

REQUEST_TIMEOUT = 10.0  # seconds for a request to arrive whole
RESERVED_FILES = 64  # descriptors kept for the catalog, the model files and the log


class GuardedH11(H11Protocol):
    max_connections = 256
    request_timeout = REQUEST_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        if len(self.connections) > self.max_connections:
            transport.abort()  # its descriptor is free at once; the client may try again
            return
        self._start_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.SEND_BODY and self.conn.their_state is not h11.IDLE:
            self._stop_deadline()  # the request is in whole (or the connection is done with)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_deadline()  # the next request on this connection gets its own time

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.abort()


def serve(app, settings: Settings) -> None:
    """Run `app` on the settings' host and port until interrupted."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:  # as many descriptors as this process may have
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    guarded = type("Guarded", (GuardedH11,), {"max_connections": max(16, min(1024, soft - RESERVED_FILES))})
    logging.getLogger("asyncio").addFilter(_Once())
    config = uvicorn.Config(app, host=settings.host, port=settings.port, http=guarded, log_level="warning",
                            timeout_keep_alive=5)
    uvicorn.Server(config).run()


class _Once(logging.Filter):
    """Each distinct warning once: asyncio logs a failed `accept` at every retry."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True
