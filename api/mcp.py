"""The MCP server: search, similar images, questions, an image's details and the index's
statistics as tools an assistant calls, over stdio (`blip2-search mcp`) or streamable HTTP
at /mcp under `serve`. Each tool takes and returns the API's own models and runs the routes'
code (`api.answers`), so a tool gives the same hits as the API for the same query.

Tools that write (`Spec.writes`) are listed and run only when the server has an API key
and the caller gives it: over HTTP in the X-API-Key header, over stdio by being the process
started with it (BLIP2_SEARCH_API_KEY). Reads need the key over HTTP when reads are
protected (BLIP2_SEARCH_PROTECT_READS=1), as the API's do.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types import CallToolResult, ImageContent, ListToolsResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError, create_model
from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from search import __version__
from search.config import Settings
from search.display import one_line
from search.errors import SearchError
from search.schemas import Album, Albums, Answer, ImageInfo, SearchResults

from . import answers
from .runner import Saturated
from .schemas import (
    AlbumPage,
    AlbumRef,
    AlbumRequest,
    AskRequest,
    ImageRef,
    SearchQuery,
    ServerStats,
    SimilarQuery,
)
from .state import AppState

INSTRUCTIONS = ("Search an indexed collection of images and videos by what they show. `search` takes "
                "the query language (terms joined by a spaced + or -, weights like 2:dog, #ID for an "
                "indexed image, filters path:, after:, before:, caption:, text:, media:, album:); every hit "
                "has an id for `similar`, `ask` and `image`.")
BUSY = "the model is busy; try again shortly"  # the API's 503


class SimilarArgs(ImageRef, SimilarQuery):
    pass


class AskArgs(ImageRef, AskRequest):
    pass


class NoArgs(BaseModel):
    pass


class AlbumArgs(AlbumRef, AlbumPage):
    pass


@dataclass(frozen=True)
class Spec:
    """A tool: its arguments and result (the API's models), what it runs, and whether it writes."""

    name: str
    args: type[BaseModel]
    result: type[BaseModel]
    run: Callable[[AppState, Any], Awaitable[BaseModel | CallToolResult]]
    description: str
    writes: bool = False


async def _image(state: AppState, args: ImageRef) -> CallToolResult:
    """The image's details, and its thumbnail for the assistant to look at."""
    record = answers.record(state, args.id)
    info = ImageInfo.of(record)
    path = await asyncio.to_thread(state.collection.thumbnail, record)
    content: list = [_text(info)]
    if path is not None:
        data = await asyncio.to_thread(path.read_bytes)
        picture = base64.b64encode(data).decode()
        content.append(ImageContent(type="image", data=picture, mime_type="image/webp"))  # as the API has it
    return CallToolResult(content=content, structured_content=info.model_dump(mode="json"))


async def _stats(state: AppState, args: NoArgs) -> ServerStats:
    return answers.stats(state)


SPECS = (
    Spec("search", SearchQuery, SearchResults, answers.search,
         "Find images and video moments by text, in the query language; the same as GET /api/search."),
    Spec("similar", SimilarArgs, SearchResults, lambda state, a: answers.similar(state, a.id, a),
         "Images and moments that look like the indexed image `id` (a video's: its moment at `at` s)."),
    Spec("ask", AskArgs, Answer, lambda state, a: answers.ask(state, a.id, a),
         "Ask a question about the indexed image `id` (earlier turns in `history`); a short answer."),
    Spec("image", ImageRef, ImageInfo, _image,
         "The indexed image `id`: path, caption, text read in it, size, dates, and its thumbnail."),
    Spec("stats", NoArgs, ServerStats, _stats,
         "The index: how many images, videos and vectors, the model, and the model parts loaded."),
    Spec("albums", NoArgs, Albums, lambda state, a: answers.albums(state),
         "The smart albums (saved queries kept current as images arrive), with their counts."),
    Spec("album", AlbumArgs, Album, lambda state, a: answers.album(state, a.name, a, seen=False),
         "A page of the album `name`: its images in its order, and which arrived since it was last shown."),
    Spec("album_create", AlbumRequest, Album, answers.create_album,
         "Save a query (the query language) as a smart album: the images whose match probability "
         "reaches `min_match` (0.5 by default), now and as they are indexed.", writes=True),
)


def build(state: AppState, *, http: bool = False, specs: tuple[Spec, ...] = SPECS) -> MCPServer:
    """The MCP server over the app's state; `http`: it answers streamable HTTP requests, each
    of which must carry the key to write."""
    tools = [_tool(state, spec) for spec in specs]
    return MCPServer("blip2-search", version=__version__, instructions=INSTRUCTIONS, tools=tools,
                     log_level="WARNING", middleware=[_Gate(state.settings, specs, http=http)])


async def serve_stdio(state: AppState) -> None:
    await build(state).run_stdio_async()


@asynccontextmanager
async def over_http(state: AppState) -> AsyncIterator[StreamableHTTPSessionManager]:
    """The session manager of the server's /mcp, running for as long as the app does."""
    server = build(state, http=True)
    server.streamable_http_app(host=state.settings.host)  # makes the session manager
    async with server.session_manager.run():
        yield server.session_manager


class Endpoint:
    """/mcp under `serve` (an ASGI app): the reads' key check of the API, then the session
    manager the app's lifespan keeps in `app.state.mcp`."""

    async def __call__(self, scope, receive, send) -> None:
        app = scope["app"]
        settings = app.state.blip2.settings
        if settings.protect_reads and not _key_matches(settings, Headers(scope=scope).get("x-api-key")):
            response = JSONResponse({"detail": "missing or wrong X-API-Key"}, status_code=401,
                                    headers={"WWW-Authenticate": "X-API-Key"})
            await response(scope, receive, send)
            return
        await app.state.mcp.handle_request(scope, receive, send)


def _tool(state: AppState, spec: Spec) -> Tool:
    """A tool whose input schema is the API model's, and whose structured output is the API's
    response model; an error is the API's one-line reason."""
    arguments = create_model(f"{spec.name}_arguments", __base__=(spec.args, ArgModelBase))

    async def call(**fields) -> CallToolResult:
        try:
            result = await spec.run(state, spec.args.model_validate(fields))
        except SearchError as exc:
            return _error(str(exc))
        except Saturated:
            return _error(BUSY)
        if isinstance(result, CallToolResult):
            return result
        return CallToolResult(content=[_text(result)], structured_content=result.model_dump(mode="json"))

    return Tool(fn=call, name=spec.name, description=spec.description,
                parameters=arguments.model_json_schema(by_alias=True),
                fn_metadata=FuncMetadata(arg_model=arguments, output_model=spec.result), is_async=True,
                annotations=ToolAnnotations(read_only_hint=not spec.writes, open_world_hint=False))


class _Gate:
    """Middleware: a tool that writes is hidden from, and refused to, a caller without the key;
    arguments that do not fit a tool's model get one line saying which and why."""

    def __init__(self, settings: Settings, specs: tuple[Spec, ...], *, http: bool) -> None:
        self.settings, self.http = settings, http
        self.specs = {spec.name: spec for spec in specs}

    async def __call__(self, ctx, call_next):
        if ctx.method == "tools/call":
            params = ctx.params or {}
            spec = self.specs.get(params.get("name"))
            if spec is not None and spec.writes and not self._may_write(ctx):
                return _error(f"{spec.name} changes the index: it needs the server's API key (X-API-Key)")
            if spec is not None:
                try:
                    spec.args.model_validate(params.get("arguments") or {})
                except ValidationError as exc:
                    return _error(_invalid(exc))
        result = await call_next(ctx)
        if ctx.method == "tools/list" and not self._may_write(ctx):
            writers = {name for name, spec in self.specs.items() if spec.writes}
            if isinstance(result, ListToolsResult):
                result.tools = [tool for tool in result.tools if tool.name not in writers]
            elif isinstance(result, dict):  # the SDK hands its result on already as JSON
                result["tools"] = [tool for tool in result.get("tools", ()) if tool["name"] not in writers]
        return result

    def _may_write(self, ctx) -> bool:
        if not self.settings.api_key:
            return False
        if not self.http:
            return True  # the process was started with the key
        request = ctx.request
        return request is not None and _key_matches(self.settings, request.headers.get("x-api-key"))


def _key_matches(settings: Settings, given: str | None) -> bool:
    expected = settings.api_key
    return not expected or (given is not None and hmac.compare_digest(given.encode(), expected.encode()))


def _invalid(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "arguments"
    return one_line(f"{where}: {first['msg']}")


def _text(model: BaseModel) -> TextContent:
    return TextContent(type="text", text=model.model_dump_json())


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=one_line(message))], is_error=True)
