"""What a route and an MCP tool both answer, written once: the HTTP API and the MCP server
(`api.mcp`) give the same hits for the same query because they run the same code."""

from __future__ import annotations

from search.errors import NotFound
from search.query.searcher import SearchOptions
from search.records import ImageRecord, Turn
from search.schemas import Answer, ImageInfo, SearchResults

from .schemas import AskRequest, SearchQuery, ServerStats, SimilarQuery
from .state import ANSWER, AppState, search_parts


async def search(state: AppState, params: SearchQuery) -> SearchResults:
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


async def similar(state: AppState, image_id: int, params: SimilarQuery) -> SearchResults:
    """Images and moments like this image, or like a video's moment at `at` seconds."""
    return await state.runner.run(state.searcher.similar.results, image_id, image_id=image_id,
                                  k=params.k, at=params.at)


async def ask(state: AppState, image_id: int, body: AskRequest) -> Answer:
    history = [Turn(turn.question, turn.answer) for turn in body.history]
    await state.ready(*ANSWER)
    answer = await state.runner.run(state.searcher.questions.ask, image_id, body.question, history, body.at)
    return Answer(id=image_id, question=body.question, answer=answer)


def record(state: AppState, image_id: int) -> ImageRecord:
    found = state.collection.catalog.get(image_id)
    if found is None:
        raise NotFound(f"no image with id {image_id}")
    return found


def image(state: AppState, image_id: int) -> ImageInfo:
    return ImageInfo.of(record(state, image_id))


def stats(state: AppState) -> ServerStats:
    running = sum(job.status == "running" for job in state.jobs.all())
    return ServerStats(**state.collection.stats().model_dump(), jobs_running=running,
                       model_parts=state.engine.loaded)
