"""Search by text, and by an uploaded image."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, Depends, Query, UploadFile

from search.media.images import open_image
from search.query.searcher import Searcher, SearchOptions
from search.schemas import Match, Matches, SearchResults

from ..deps import State, read_access
from ..schemas import MatchQuery, SearchQuery, errors
from ..state import IMAGE, MATCH, search_parts

router = APIRouter(prefix="/api/search", tags=["search"], dependencies=[Depends(read_access)],
                   responses=errors(401, 413, 422, 503))


@router.get("", response_model=SearchResults)
async def search(state: State, params: Annotated[SearchQuery, Query()]) -> SearchResults:
    options = SearchOptions(
        k=params.k, offset=params.offset, rerank=params.rerank, rerank_top=params.rerank_top,
        min_match=params.min_match, hybrid=params.hybrid, path_prefix=params.path_prefix,
        after=params.after, before=params.before, sort=params.sort, candidates=params.candidates,
        where=tuple(params.where),
    )
    await state.ready(*search_parts(options.matched, options.where))
    if options.where:  # the decoder asked of up to `MODEL_ASKS` hits: between others' calls
        return await state.runner.in_turns(lambda engine: state.searcher.with_engine(engine).find(
            params.q, options), state.engine)
    return await state.runner.gather(state.searcher.search_many, (params.q, options))


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
