"""What a route and an MCP tool both answer, written once: the HTTP API and the MCP server
(`api.mcp`) give the same hits for the same query because they run the same code."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from search.errors import NotFound
from search.query.albums import Albums, AlbumSpec
from search.query.searcher import SearchOptions
from search.records import ImageRecord, Turn
from search.schemas import Album, Answer, ImageInfo, SearchResults
from search.schemas import Albums as AlbumList

from .schemas import AlbumPage, AlbumRequest, AskRequest, SearchQuery, ServerStats, SimilarQuery
from .state import ANSWER, AppState, search_parts

T = TypeVar("T")


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


async def with_albums(state: AppState, work: Callable[[Albums], T], *, where: bool | None = None) -> T:
    """`work(albums)` on a thread of its own, each model call in its turn. The match head (and
    the language model for where conditions) is built first where it will be asked: for a new
    album (`where` given), or for an album with images to judge (`where` None: looked up)."""
    if where is None:
        behind = [album for album in state.collection.catalog.albums.all()
                  if album.min_match is not None and album.checked < state.collection.generation]
        parts = search_parts(True, [a.where for a in behind if a.where]) if behind else ()
    else:
        parts = search_parts(True, ("where",) if where else ())
    await state.ready(*parts)
    return await state.runner.in_turns(lambda engine: work(state.searcher.with_engine(engine).albums),
                                       state.engine)


async def albums(state: AppState) -> AlbumList:
    return AlbumList(albums=await with_albums(state, Albums.all))


async def album(state: AppState, name: str, page: AlbumPage, *, seen: bool = True) -> Album:
    return await with_albums(state, lambda found: found.show(name, page.offset, page.limit, seen=seen))


async def create_album(state: AppState, body: AlbumRequest) -> Album:
    spec = AlbumSpec(name=body.name, query=body.query, min_match=body.min_match, sort=body.sort,
                     where=tuple(body.where), candidates=body.candidates)
    return await with_albums(state, lambda found: found.create(spec), where=bool(body.where))
