"""One image: metadata, similar images, thumbnail, file, and questions about it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse

from search.schemas import Answer, Explanation, ImageInfo, ImagePage, SearchResults

from .. import answers
from ..deps import State, read_access
from ..schemas import AskRequest, BrowseQuery, SimilarQuery, Text, errors
from ..state import MATCH

router = APIRouter(prefix="/api/images", tags=["images"], dependencies=[Depends(read_access)],
                   responses=errors(401, 404, 422))
ImageId = Annotated[int, Path(ge=1, le=2**62, description="the catalog id")]
At = Annotated[float | None,
               Query(ge=0, le=1e7, description="a video's: a time in seconds (its moment shown then)")]


@router.get("", response_model=ImagePage)
def browse(state: State, params: Annotated[BrowseQuery, Query()]) -> ImagePage:
    """Every indexed image, a page at a time: newest or oldest first (EXIF date, else
    modified), or by path."""
    return state.collection.browse(params.offset, params.limit, params.sort)


@router.get("/{image_id}", response_model=ImageInfo)
def image(state: State, image_id: ImageId) -> ImageInfo:
    return answers.image(state, image_id)


@router.get("/{image_id}/similar", response_model=SearchResults, responses=errors(503))
async def similar(state: State, image_id: ImageId, params: Annotated[SimilarQuery, Query()]):
    """Images and moments like this image, or like a video's moment at `at` seconds."""
    return await answers.similar(state, image_id, params)


@router.get("/{image_id}/explain", response_model=Explanation, responses=errors(503))
async def explain(state: State, image_id: ImageId,
                  q: Annotated[Text, Query(min_length=1, max_length=1000, description="the text to find")],
                  at: At = None):
    """Which of the image's query vectors scored best against `q`, and where in the image the
    match head finds it: a grid of rows x cols over the image, 0 to 1 (a video's: over its
    moment shown at `at` seconds)."""
    await state.ready(*MATCH)
    return await state.runner.run(state.searcher.questions.explain, image_id, q, at)


@router.get("/{image_id}/thumbnail", response_class=FileResponse)
def thumbnail(state: State, image_id: ImageId, request: Request) -> Response:
    """Asked again each time, a 304 while its content is the same: a deleted image's id may
    be given to another image (SQLite reuses the highest), so a thumbnail is never kept by id."""
    record = answers.record(state, image_id)
    tag = f'"{record.content_hash}"'  # thumbnails are made per content
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag, "Cache-Control": "no-cache"})
    path = state.collection.thumbnail(record)
    if path is None:
        raise HTTPException(404, f"image {image_id} has no thumbnail")
    return FileResponse(path, media_type="image/webp", headers={"Cache-Control": "no-cache", "ETag": tag})


@router.get("/{image_id}/file", response_class=FileResponse, responses=errors(403))
def file(state: State, image_id: ImageId) -> FileResponse:
    """Only catalog ids, only images and videos that indexed successfully (a failed row may
    name any file), and only files that still resolve inside their indexed folder. A video is
    served in ranges, so that a player seeks to a moment."""
    record = answers.record(state, image_id)
    if record.status != "ok":
        raise HTTPException(404, f"image {image_id} could not be indexed, so it is not served")
    if record.parent is not None:
        raise HTTPException(404, f"{image_id} is a moment of video {record.parent}: its file is "
                                 f"/api/images/{record.parent}/file")
    path = record.file()
    if path is None:
        raise HTTPException(403, f"image {image_id} is no longer the file indexed inside its folder "
                                 "(moved, changed or replaced since: index it again)")
    return FileResponse(path, headers={"Cache-Control": "no-cache"})


@router.post("/{image_id}/ask", response_model=Answer, responses=errors(413, 503))
async def ask(state: State, image_id: ImageId, body: AskRequest) -> Answer:
    return await answers.ask(state, image_id, body)
