"""Smart albums: saved queries whose contents follow the index (`search.query.albums`). Their
model work (judging images against an album's cutoff) takes its turns with the searches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Response

from search.query.albums import Albums, AlbumSpec
from search.schemas import Album
from search.schemas import Albums as AlbumList

from ..deps import State, read_access, write_access
from ..schemas import AlbumEdit, AlbumRequest, errors
from ..state import AppState, search_parts

router = APIRouter(prefix="/api/albums", tags=["albums"], responses=errors(401, 422, 503))
Name = Annotated[str, Path(min_length=1, max_length=64, description="the album's name")]
T = TypeVar("T")


async def _with_albums(state: AppState, work: Callable[[Albums], T], *, where: bool = False) -> T:
    """`work(albums)` on a thread of its own, each model call in its turn; the match head (and
    the language model for where conditions) built first."""
    await state.ready(*search_parts(True, ("where",) if where else ()))
    return await state.runner.in_turns(lambda engine: work(state.searcher.with_engine(engine).albums),
                                       state.engine)


def _asks(state: AppState) -> bool:
    """Whether an album to bring up to date has where conditions (the language model is needed)."""
    return any(album.where for album in state.collection.catalog.albums.all())


@router.get("", response_model=AlbumList, dependencies=[Depends(read_access)])
async def albums(state: State) -> AlbumList:
    """Every album, with its count and how many items are new since it was last shown."""
    listed = await _with_albums(state, Albums.all, where=_asks(state))
    return AlbumList(albums=listed)


@router.post("", status_code=201, response_model=Album, dependencies=[Depends(write_access)])
async def create(state: State, body: AlbumRequest) -> Album:
    """Save a query as an album, and judge the collection's images against it."""
    spec = AlbumSpec(name=body.name, query=body.query, min_match=body.min_match, sort=body.sort,
                     where=tuple(body.where), candidates=body.candidates)
    return await _with_albums(state, lambda albums: albums.create(spec), where=bool(body.where))


@router.get("/{name}", response_model=Album, dependencies=[Depends(read_access)], responses=errors(404))
async def show(state: State, name: Name, offset: Annotated[int, Query(ge=0)] = 0,
               limit: Annotated[int, Query(ge=0, le=500)] = 50,
               seen: Annotated[bool, Query(description="mark it shown: what is new is new since now")] = True
               ) -> Album:
    """A page of the album in its order, with `new_ids`: the hits written since it was last shown."""
    return await _with_albums(state, lambda albums: albums.show(name, offset, limit, seen=seen),
                              where=_asks(state))


@router.patch("/{name}", response_model=Album, dependencies=[Depends(write_access)], responses=errors(404))
async def edit(state: State, name: Name, body: AlbumEdit) -> Album:
    """Pin or exclude images by hand, or take it back."""
    return await _with_albums(state, lambda albums: albums.place(
        name, pin=body.pin, unpin=body.unpin, exclude=body.exclude, include=body.include))


@router.delete("/{name}", status_code=204, dependencies=[Depends(write_access)], responses=errors(404))
async def delete(state: State, name: Name) -> Response:
    """Delete the album; its images stay indexed."""
    await asyncio.to_thread(state.searcher.albums.delete, name)
    return Response(status_code=204)


@router.get("/{name}/export", response_model=list[str], dependencies=[Depends(read_access)],
            responses=errors(404))
async def export(state: State, name: Name, response: Response) -> list[str]:
    """The album's files (a video once), in its order: a JSON list of paths."""
    response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}.json"
    return await _with_albums(state, lambda albums: albums.paths(name))
