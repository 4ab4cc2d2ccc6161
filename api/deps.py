"""Dependencies routes take as `Annotated` aliases: the app state and API-key checks."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from .state import AppState


def get_state(request: Request) -> AppState:
    """The app's state. When a writer (an index job, another process) has finished
    committing, the collection's vector index is brought in step in the background
    (`Collection.refresh`); until then, and while a writer works, requests see the
    collection as it was before it."""
    state = request.app.state.blip2
    state.collection.refresh(background=True)
    return state


State = Annotated[AppState, Depends(get_state)]
ApiKey = Annotated[str | None, Header(alias="X-API-Key", description="needed when the server has a key")]


def _check_key(state: AppState, given: str | None) -> None:
    expected = state.settings.api_key
    if not expected:
        return
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(401, "missing or wrong X-API-Key", headers={"WWW-Authenticate": "X-API-Key"})


def write_access(state: State, x_api_key: ApiKey = None) -> None:
    """Write endpoints need the key whenever one is set, and are refused without one when
    the server listens beyond loopback (anyone who reaches it could index any folder)."""
    settings = state.settings
    if not settings.api_key and not settings.loopback_only:
        raise HTTPException(403, f"indexing is refused: the server listens on {settings.host} and has no "
                                 "API key; set BLIP2_SEARCH_API_KEY (then send it as X-API-Key)")
    _check_key(state, x_api_key)


def read_access(state: State, x_api_key: ApiKey = None) -> None:
    """Read endpoints need it only with BLIP2_SEARCH_PROTECT_READS=1."""
    if state.settings.protect_reads:
        _check_key(state, x_api_key)
