"""Request bodies and the API's own responses. The shapes the CLI shares (hits, images,
answers, index summaries, stats) are `search.schemas`, defined once for both."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from search.schemas import IndexSummary, Stats


class Error(BaseModel):
    detail: str | list[dict[str, Any]]  # a message, or FastAPI's list of validation errors


def errors(*codes: int) -> dict:
    """OpenAPI `responses` entries for the error statuses a route can return."""
    return {code: {"model": Error} for code in codes}


class ChatTurn(BaseModel):
    question: str = Field(max_length=1000)
    answer: str = Field(max_length=1000)


class AskRequest(BaseModel):
    question: str = Field(min_length=1, max_length=1000)
    history: list[ChatTurn] = Field(default=[], max_length=20)


class IndexRequest(BaseModel):
    paths: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(
        min_length=1, max_length=100, description="folders on the server to index"
    )


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


class ServerStats(Stats):
    """`stats`, plus what only a server has: its index jobs."""

    jobs_running: int


class Health(BaseModel):
    status: str


class SearchQuery(BaseModel):
    """GET /api/search parameters."""

    q: str = Field(min_length=1, max_length=1000, description="what to look for, in plain language")
    k: int = Field(default=10, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=10_000)
    rerank: bool = False
    rerank_top: int = Field(default=50, ge=1, le=1000, description="hits reranked by the match head")
    min_match: float | None = Field(default=None, ge=0, le=1)
    hybrid: bool = False
    path_prefix: str | None = Field(default=None, max_length=4096)
    after: datetime | None = None
    before: datetime | None = None
