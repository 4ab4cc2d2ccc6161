"""What every query shares: the indexed record behind an id, its stored vectors and picture,
hits from ranked ids, and the timer a server wraps each stage in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

import numpy as np
from PIL import Image

from ..collection import Collection
from ..errors import ImageError, InputError, NotFound
from ..media.images import open_image
from ..media.video import frame_at
from ..records import ImageRecord
from ..schemas import Hit, MomentScore

MOMENT_SPREAD = 4  # first-stage rows taken per hit wanted where there are videos
Timer = Callable[[str], AbstractContextManager]  # timer(stage) wraps a stage: text_encode, image_encode,
# vector_search, rerank, generation (a server records where time goes)


def untimed(stage: str) -> AbstractContextManager:
    return nullcontext()


class Lookup:
    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def record(self, image_id: int) -> ImageRecord:
        """The indexed image `image_id`, or NotFound saying why not."""
        record = self.collection.catalog.get(image_id)
        if record is None:
            raise NotFound(f"no indexed image with id {image_id}")
        if record.status != "ok":
            raise NotFound(f"image {image_id} ({record.path}) could not be indexed: {record.error}")
        return record

    def moment(self, image_id: int, at: float | None = None) -> int:
        """The row that stands for `image_id` at `at` seconds: a video's moment shown then (at
        its first moment when `at` is None), else the image or moment itself; an `at` given
        for an image, or past a video's end, is an InputError."""
        record = self.record(image_id)
        if record.media != "video" or record.parent is not None:
            if at is not None and record.parent is None:
                raise InputError(f"image {image_id} is not a video: a time (--at) applies to videos only")
            return image_id
        if at is not None and not 0 <= at <= (record.end_s or 0.0):
            raise InputError(f"video {image_id} lasts {record.end_s or 0:.1f} s: {at:g} s is outside it")
        found = self.collection.catalog.moments.at(image_id, at or 0.0)
        if found is None:
            raise NotFound(f"video {image_id} has no moments")
        return found.id

    def spread(self) -> int:
        """How many first-stage rows to take for each hit wanted: MOMENT_SPREAD when the
        collection holds videos (their moments collapse into one hit each), else 1."""
        return MOMENT_SPREAD if self.collection.memo("videos", lambda: self.collection.stats().videos) else 1

    def vectors(self, image_id: int) -> np.ndarray:
        """(Q, D) float16: the indexed image's stored vectors, or NotFound saying why not."""
        self.record(image_id)
        vectors = self.collection.vectors_of(image_id)
        if vectors is None:
            raise NotFound(f"image {image_id} has no stored vectors")
        return vectors

    def picture(self, image_id: int, at: float | None = None) -> Image.Image:
        """The indexed image's picture, decoded from its file (a moment's: its video's frame
        that stands for it, or the one at `at` seconds), or NotFound saying why not."""
        record = self.record(image_id)
        try:
            return _decoded(self._video_of(record), record, at)
        except ImageError as exc:
            raise NotFound(f"image {image_id} ({record.path}) cannot be read: {exc}") from None

    def _video_of(self, record: ImageRecord) -> ImageRecord | None:
        return self.collection.catalog.get(record.parent) if record.parent is not None else None

    def pictures(self, ids: list[int]) -> list[tuple[int, Image.Image]]:
        """(id, picture) of those of `ids` that are indexed and whose file reads."""
        records = self.collection.catalog.get_many(ids)
        videos = self.collection.catalog.get_many(r.parent for r in records.values() if r.parent is not None)
        pictures = []
        for image_id in ids:
            record = records.get(image_id)
            if record is None or record.status != "ok":
                continue
            try:
                pictures.append((image_id, _decoded(videos.get(record.parent), record)))
            except ImageError:
                continue
        return pictures

    def hits(self, ranked: Iterable[tuple[int, float | None]]) -> list[Hit]:
        """Hits of (id, score) in their order; an id no longer in the catalog is left out. A
        video is one hit, at its first (best) moment in the order, with every moment of it
        that is in `ranked`."""
        ranked = list(ranked)
        records = self.collection.catalog.get_many(image for image, _ in ranked)
        videos = self.collection.catalog.get_many({r.parent for r in records.values()
                                                   if r.parent is not None})
        hits: list[Hit] = []
        seen: dict[int, Hit] = {}
        for image, score in ranked:
            record = records.get(image)
            video = videos.get(record.parent) if record is not None and record.parent is not None else None
            if record is None or (record.parent is not None and video is None):
                continue
            if video is None:
                hits.append(Hit(id=image, path=record.path, score=score, caption=record.caption,
                                taken_at=taken_at(record), text=record.text))
                continue
            moment = MomentScore(id=image, time_s=record.start_s or 0.0, score=score)
            if video.id in seen:
                seen[video.id].moments.append(moment)
                continue
            seen[video.id] = Hit(id=video.id, path=video.path, score=score, caption=record.caption,
                                 taken_at=taken_at(video), text=record.text, media="video", moment=image,
                                 time_s=moment.time_s, duration_s=video.end_s, moments=[moment])
            hits.append(seen[video.id])
        for hit in seen.values():
            hit.moments.sort(key=lambda m: m.time_s)
        return hits


def _decoded(video: ImageRecord | None, record: ImageRecord, at: float | None = None) -> Image.Image:
    """The picture of an image, or of a moment: its video's frame at `at` (None: the one that
    stands for it)."""
    if record.parent is None:
        return open_image(record.path)
    if video is None:
        raise ImageError("its video is no longer indexed")
    return frame_at(video.path, (record.frame_s or record.start_s or 0.0) if at is None else at)


def taken_at(record: ImageRecord) -> str:
    """When the picture was taken (EXIF), else when its file was last modified, ISO 8601."""
    when = record.taken_at or datetime.fromtimestamp(record.mtime)
    return when.isoformat(timespec="seconds")
