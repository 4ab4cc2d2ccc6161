"""Smart albums: saved queries whose contents follow the index (`search.query.albums`). Their
model work (judging images against an album's cutoff) takes its turns with the searches."""

from __future__ import annotations

import asyncio
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Response

from search.schemas import Album, Albums

from .. import answers
from ..deps import State, read_access, write_access
from ..schemas import AlbumEdit, AlbumPage, AlbumRequest, errors

router = APIRouter(prefix="/api/albums", tags=["albums"], responses=errors(401, 422, 503))
Name = Annotated[str, Path(min_length=1, max_length=64, description="the album's name")]


@router.get("", response_model=Albums, dependencies=[Depends(read_access)])
async def albums(state: State) -> Albums:
    """Every album, with its count and how many items are new since it was last shown."""
    return await answers.albums(state)


@router.post("", status_code=201, response_model=Album, dependencies=[Depends(write_access)])
async def create(state: State, body: AlbumRequest) -> Album:
    """Save a query as an album, and judge the collection's images against it."""
    return await answers.create_album(state, body)


@router.get("/{name}", response_model=Album, dependencies=[Depends(read_access)], responses=errors(404))
async def show(state: State, name: Name, page: Annotated[AlbumPage, Query()],
               seen: Annotated[bool, Query(description="mark it shown: what is new is new since now")] = True
               ) -> Album:
    """A page of the album in its order, with `new_ids`: the hits written since it was last shown."""
    return await answers.album(state, name, page, seen=seen)


@router.patch("/{name}", response_model=Album, dependencies=[Depends(write_access)], responses=errors(404))
async def edit(state: State, name: Name, body: AlbumEdit) -> Album:
    """Pin or exclude images by hand, or take it back."""
    return await answers.with_albums(state, lambda albums: albums.place(
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
    return await answers.with_albums(state, lambda albums: albums.paths(name))
