"""The MCP server through the SDK's own client: in process (on the app's own state, inside
its event loop), over stdio (`blip2-search mcp` as a subprocess) and over streamable HTTP
(`blip2-search serve`); its answers against the HTTP API's for the same requests."""

from __future__ import annotations

import base64
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ImageContent, TextContent

from api import mcp as mcp_server
from api.app import create_app
from api.schemas import SearchQuery
from tests.support.browsing import serve

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"search", "similar", "ask", "image", "stats", "albums", "album"}  # album_create: with the key
QUERY = {"q": "a red circle", "k": 5}
QUESTION = "what color is the circle?"


@pytest.fixture(scope="module")
def client(served_index):
    with TestClient(create_app(served_index["settings"])) as client:
        yield client


def _session(client: TestClient, work):
    """`work(session)` run by an MCP client connected in memory to a server over the app's
    state, inside the app's event loop (where its model runner serves requests)."""
    async def run():
        async with Client(mcp_server.build(client.app.state.blip2)) as session:
            return await work(session)

    return client.portal.call(run)


def _text(result) -> str:
    [block] = [block for block in result.content if isinstance(block, TextContent)]
    return block.text


def test_the_tools_and_their_schemas_are_the_apis(client):
    async def listed(session):
        return {tool.name: tool for tool in (await session.list_tools()).tools}

    tools = _session(client, listed)
    assert set(tools) == TOOLS
    search = tools["search"]
    assert set(search.input_schema["properties"]) == set(SearchQuery.model_fields)
    assert search.input_schema["required"] == ["q"]
    assert search.input_schema["properties"]["k"]["maximum"] == 100
    assert {"query", "results"} <= set(search.output_schema["properties"])
    assert set(tools["ask"].input_schema["required"]) == {"id", "question"}
    assert all(tool.annotations.read_only_hint for tool in tools.values())


def test_tools_answer_as_the_api_does(client):
    api = client.get("/api/search", params=QUERY).json()
    reranked = client.get("/api/search", params={"q": "blue", "k": 3, "rerank": True}).json()
    first = api["results"][0]["id"]

    async def calls(session):
        return [await session.call_tool(name, arguments) for name, arguments in (
            ("search", QUERY), ("search", {"q": "blue", "k": 3, "rerank": True}),
            ("similar", {"id": first, "k": 4}), ("ask", {"id": first, "question": QUESTION}), ("stats", {}))]

    search, rerank, similar, ask, stats = _session(client, calls)
    assert not any(result.is_error for result in (search, rerank, similar, ask, stats))
    assert [(h["id"], h["score"]) for h in search.structured_content["results"]] == \
        [(h["id"], h["score"]) for h in api["results"]]
    assert search.structured_content == api
    assert rerank.structured_content == reranked
    assert similar.structured_content == client.get(f"/api/images/{first}/similar", params={"k": 4}).json()
    answer = client.post(f"/api/images/{first}/ask", json={"question": QUESTION}).json()
    assert ask.structured_content == answer
    assert stats.structured_content["images"] == 10 and "text" in stats.structured_content["model_parts"]


def test_image_gives_its_details_and_its_thumbnail(client):
    async def details(session):
        return await session.call_tool("image", {"id": 1})

    result = _session(client, details)
    assert not result.is_error
    assert result.structured_content == client.get("/api/images/1").json()
    [picture] = [block for block in result.content if isinstance(block, ImageContent)]
    assert picture.mime_type == "image/webp"
    assert base64.b64decode(picture.data) == client.get("/api/images/1/thumbnail").content


def test_bad_input_gets_the_apis_reason_in_one_line(client):
    async def bad(session):
        return [await session.call_tool(name, arguments) for name, arguments in (
            ("image", {"id": 999_999}), ("search", {"q": '"unclosed'}), ("search", {"q": "x", "k": 1000}),
            ("similar", {"id": 0}))]

    unknown, malformed, too_many, zero = _session(client, bad)
    assert all(result.is_error for result in (unknown, malformed, too_many, zero))
    assert _text(unknown) == client.get("/api/images/999999").json()["detail"] == "no image with id 999999"
    assert _text(malformed) == client.get("/api/search", params={"q": '"unclosed'}).json()["detail"]
    assert _text(too_many).startswith("k: ") and "100" in _text(too_many)
    assert _text(zero).startswith("id: ")
    assert all("\n" not in _text(result) and "Traceback" not in _text(result)
               for result in (unknown, malformed, too_many, zero))


def test_a_tool_that_writes_needs_the_key(client):
    """album_create is listed and runs only for a caller with the server's key."""
    state = client.app.state.blip2
    album = {"name": "reds", "query": "a red circle", "min_match": 0.0}

    async def seen(keyed: bool, http: bool = False):
        settings = state.settings.model_copy(update={"api_key": "sesame" if keyed else None})
        server = mcp_server.build(replace(state, settings=settings), http=http)
        async with Client(server) as session:
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            assert "album_create" not in tools or not tools["album_create"].annotations.read_only_hint
            return "album_create" in tools, await session.call_tool("album_create", album)

    cases = ((False, False), (True, True), (True, False))
    try:
        (hidden, refused), (over_http, no_header), (listed, done) = [
            client.portal.call(seen, keyed, http) for keyed, http in cases]
    finally:
        client.delete("/api/albums/reds")
    assert not hidden and refused.is_error and "API key" in _text(refused)
    assert not over_http and no_header.is_error  # over HTTP, a request must carry the key itself
    assert listed and not done.is_error and done.structured_content["name"] == "reds"
    assert done.structured_content["count"] == client.get("/api/stats").json()["images"]  # min_match 0: all


def test_album_tools_answer_as_the_api_does(client):
    created = client.post("/api/albums", json={"name": "blues", "query": "blue", "min_match": 0.2})
    assert created.status_code == 201
    try:
        async def calls(session):
            return await session.call_tool("albums", {}), await session.call_tool("album", {"name": "blues"})

        listed, shown = _session(client, calls)
        api = client.get("/api/albums/blues", params={"seen": False}).json()
        missing = _session(client, lambda session: session.call_tool("album", {"name": "nothing"}))
    finally:
        client.delete("/api/albums/blues")
    assert listed.structured_content == {"albums": [{**api, "results": [], "new_ids": []}]}
    assert shown.structured_content == api
    assert missing.is_error and _text(missing) == "no album named 'nothing'"


def test_over_stdio_the_command_lists_the_tools_and_searches(client, served_index):
    settings = served_index["settings"]
    env = {name: value for name, value in os.environ.items() if name.startswith(("BLIP2_SEARCH_", "HF_"))}
    command = StdioServerParameters(
        command=sys.executable, args=["-m", "cli.main", "mcp", "--index", str(settings.index),
                                      "--model", settings.model],
        env={**env, "PYTHONPATH": str(ROOT)}, cwd=str(ROOT))

    async def run():
        async with Client(command, mode="legacy") as session:  # the initialize handshake
            return (await session.list_tools()).tools, await session.call_tool("search", QUERY)

    tools, found = client.portal.call(run)
    assert {tool.name for tool in tools} == TOOLS
    assert found.structured_content == client.get("/api/search", params=QUERY).json()


def test_over_http_under_serve_with_the_key(client, served_index, monkeypatch):
    """The real server, its reads protected: the SDK's client, sending the key, gets the API's
    hits; a request without it is refused before it reaches a session."""
    monkeypatch.setenv("BLIP2_SEARCH_API_KEY", "sesame")
    monkeypatch.setenv("BLIP2_SEARCH_PROTECT_READS", "1")

    async def run(url: str):
        async with httpx2.AsyncClient(headers={"X-API-Key": "sesame"}) as http, \
                Client(streamable_http_client(f"{url}/mcp", http_client=http)) as session:
            found = await session.call_tool("search", QUERY)
        async with httpx2.AsyncClient() as http:
            refused = await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        return found, refused.status_code

    with contextmanager(serve)(served_index["settings"]) as url:
        found, refused = client.portal.call(run, url)
    assert found.structured_content == client.get("/api/search", params=QUERY).json()
    assert refused == 401
