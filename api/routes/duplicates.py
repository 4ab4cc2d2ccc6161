"""Duplicates: groups of indexed images that show the same picture (read only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from search.query import duplicates as finder
from search.schemas import Duplicates

from ..deps import State, read_access
from ..schemas import errors

router = APIRouter(prefix="/api/duplicates", tags=["duplicates"], dependencies=[Depends(read_access)],
                   responses=errors(401, 422))


@router.get("", response_model=Duplicates)
def duplicates(state: State, threshold: Annotated[float | None, Query(
        gt=0, le=1, description="the least similarity of a near copy to the kept image (default: calibrated)",
)] = None) -> Duplicates:
    """Groups of images that are the same picture: identical files, and near copies (resized,
    re-encoded, lightly cropped, brighter or darker, another format), each with the one to
    keep first (the most pixels, then the oldest). Nothing is deleted or moved. Kept in
    memory until the index changes."""
    return finder.groups(state.collection, threshold)
