"""Search by text, and by an uploaded image."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Depends, Query, UploadFile

from search.media.images import open_image
from search.query.searcher import Searcher
from search.schemas import Match, Matches, SearchResults

from .. import answers
from ..deps import State, read_access
from ..schemas import MatchQuery, SearchQuery, errors
from ..state import IMAGE, MATCH

router = APIRouter(prefix="/api/search", tags=["search"], dependencies=[Depends(read_access)],
                   responses=errors(401, 413, 422, 503))


@router.get("", response_model=SearchResults)
async def search(state: State, params: Annotated[SearchQuery, Query()]) -> SearchResults:
    return await answers.search(state, params)


@router.get("/match", response_model=Matches)
async def match(state: State, params: Annotated[MatchQuery, Query()]) -> Matches:
    """The match head's P(match) for hits already shown, for `q` in the query language (as
    a search's rerank gives it: `Searcher.matches`): a page asks for its first-stage results,
    then for their matches a few at a time, and fills them in as they arrive."""
    await state.ready(*MATCH)
    found = await state.runner.run(state.searcher.matches, params.q, params.ids)
    return Matches(query=params.q, matches=[Match(id=i, match=p) for i, p in found.items()])


@router.post("/image", response_model=SearchResults)
async def search_by_image(
    state: State, file: UploadFile, k: Annotated[int, Query(ge=1, le=100)] = 10
) -> SearchResults:
    data = await file.read()
    await state.ready(*IMAGE)
    return await state.runner.run(_similar_to_upload, state.searcher, data, file.filename or "upload", k)


def _similar_to_upload(searcher: Searcher, data: bytes, name: str, k: int) -> SearchResults:
    return searcher.similar.results(name, image=open_image(io.BytesIO(data)), k=k)
