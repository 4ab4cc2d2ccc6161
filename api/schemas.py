"""Request bodies and the API's own responses. The shapes the CLI shares (hits, images,
answers, index summaries, stats) are `search.schemas`, defined once for both."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from search.config import Order, Sort
from search.schemas import IndexSummary, PausedRoot, Stats, WatchedRoot


class Error(BaseModel):
    detail: str | list[dict[str, Any]]  # a message, or FastAPI's list of validation errors


def errors(*codes: int) -> dict:
    """OpenAPI `responses` entries for the error statuses a route can return."""
    return {code: {"model": Error} for code in codes}


def _unicode(text: str) -> str:
    """Refuse lone surrogates (`"\\udcff"` in JSON): no tokenizer, file system or response
    can encode them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text holds a character that is not valid Unicode (at {exc.start})") from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]


class ChatTurn(BaseModel):
    question: Text = Field(max_length=1000)
    answer: Text = Field(max_length=1000)


class AskRequest(BaseModel):
    question: Text = Field(min_length=1, max_length=1000)
    history: list[ChatTurn] = Field(default=[], max_length=20)
    at: float | None = Field(None, ge=0, le=1e7,
                             description="a video's: the time in seconds of the frame asked about")


class IndexRequest(BaseModel):
    paths: list[Annotated[Text, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=100, description="folders on the server to index"
    )
    keep_features: bool = Field(False, description="keep each image's encoder output, for a fast match "
                                "head and questions (remembered by the index)")
    ocr: bool = Field(True, description="read the text written in the images (and in those indexed "
                      "without it)")


class JobInfo(BaseModel):
    id: str
    status: str
    paths: list[str]
    done: int
    total: int | None
    summary: IndexSummary | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class IndexStatus(BaseModel):
    """What the server is indexing now, the roots it follows (`serve --watch`) and those paused."""

    active: JobInfo | None  # the job running (or next to run), with its progress
    watching: list[WatchedRoot]
    paused: list[PausedRoot]  # removals held back, and why (`indexer.guard`)


class ServerStats(Stats):
    """`stats`, plus what only a server has: its index jobs."""

    jobs_running: int
    model_parts: list[str] = Field(description="the model parts built so far: text, encoder, "
                                   "generation_encoder, retrieval, generation, language_model")


class MatchQuery(BaseModel):
    """GET /api/search/match parameters."""

    q: Text = Field(min_length=1, max_length=1000, description="the query whose hits these are")
    ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(min_length=1, max_length=100,
                                                             description="indexed image ids (repeat ids=)")


class Health(BaseModel):
    status: str


class SearchQuery(BaseModel):
    """GET /api/search parameters."""

    q: Text = Field(min_length=1, max_length=1000, description=(
        "what to look for, in the query language: terms joined by a spaced + or -, each may "
        "be weighted (2:golden retriever) or an indexed image (#42), and filters path:, "
        "after:, before:, caption:, text:, media:, album: anywhere"))
    k: int = Field(default=10, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=10_000)
    sort: Sort = Field(default="relevance", description=(
        "newest/oldest: the candidates whose match probability reaches min_match (0.5 by "
        "default), by date (EXIF, else modified)"))
    candidates: int | None = Field(default=None, ge=1, le=1000, description=(
        "first-stage hits a date order or a where condition considers (default 200)"))
    where: list[Annotated[Text, Field(min_length=3, max_length=1000)]] = Field(
        default=[], max_length=8, description=(
            "QUESTION=ANSWER, repeatable: keep the hits whose answer to QUESTION (the decoder's, "
            "normalised) is ANSWER; candidates are asked in rank order until k pass"))
    rerank: bool = False
    rerank_top: int | None = Field(default=None, ge=1, le=1000, description=(
        "hits reranked by the match head (default: the page shown on a CPU, 128 on a GPU)"))
    min_match: float | None = Field(default=None, ge=0, le=1)
    hybrid: bool = False
    path_prefix: Text | None = Field(default=None, max_length=4096)
    after: datetime | None = None
    before: datetime | None = None


class BrowseQuery(BaseModel):
    """GET /api/images parameters."""

    offset: int = Field(default=0, ge=0, le=10_000_000)
    limit: int = Field(default=50, ge=1, le=500)
    sort: Order = "newest"


AlbumId = Annotated[int, Field(ge=1, le=2**62)]


class AlbumRequest(BaseModel):
    name: Text = Field(min_length=1, max_length=64, description="letters, digits, spaces, . ' -")
    query: Text = Field(min_length=1, max_length=1000, description="in the query language")
    min_match: float | None = Field(None, ge=0, le=1, description="the match probability an image "
                                    "needs (default 0.5 where the query has a text term)")
    sort: Sort = "relevance"
    where: list[Annotated[Text, Field(max_length=1000)]] = Field([], max_length=8,
                                                                 description="QUESTION=ANSWER conditions")
    candidates: int = Field(200, ge=1, le=1000, description="first-stage hits judged as it is created")


class AlbumEdit(BaseModel):
    """Images placed in an album by hand (a video's id places all its moments)."""

    pin: list[AlbumId] = Field([], max_length=1000, description="in, whatever the query says")
    unpin: list[AlbumId] = Field([], max_length=1000)
    exclude: list[AlbumId] = Field([], max_length=1000, description="out, whatever the query says")
    include: list[AlbumId] = Field([], max_length=1000, description="an exclusion taken back")


class SimilarQuery(BaseModel):
    """GET /api/images/{id}/similar parameters."""

    k: int = Field(default=10, ge=1, le=100)
    at: float | None = Field(default=None, ge=0, le=1e7,
                             description="a video's: a time in seconds (its moment shown then)")


class ImageRef(BaseModel):
    """An indexed image, as the MCP tools name it (the routes take it in the path, with the
    same bounds)."""

    id: int = Field(ge=1, le=2**62, description="the catalog id")


class AlbumRef(BaseModel):
    """An album, as the MCP tools name it (the routes take it in the path, with the same bounds)."""

    name: str = Field(min_length=1, max_length=64, description="the album's name")


class AlbumPage(BaseModel):
    """GET /api/albums/{name} parameters."""

    offset: int = Field(0, ge=0, le=10_000)
    limit: int = Field(50, ge=0, le=500)
