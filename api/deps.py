"""Dependencies routes take as `Annotated` aliases: the app state and API-key checks."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import unquote

from fastapi import Cookie, Depends, Header, HTTPException, Request

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
KEY_COOKIE = "blip2_search_key"
CookieKey = Annotated[str | None, Cookie(alias=KEY_COOKIE, description="the key, for reads (the web page)")]


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


def read_access(state: State, x_api_key: ApiKey = None, cookie_key: CookieKey = None) -> None:
    """Read endpoints need it only with BLIP2_SEARCH_PROTECT_READS=1, in X-API-Key or in the
    cookie the web page sets when it asks for the key (a picture's `<img>` sends no header;
    the cookie is SameSite=Strict, and only reads take it: another site cannot make a
    browser write with it)."""
    if state.settings.protect_reads:
        _check_key(state, x_api_key or (cookie_key and unquote(cookie_key)))  # the page encodes it
