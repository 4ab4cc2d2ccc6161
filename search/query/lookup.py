"""What every query shares: the indexed record behind an id, its stored vectors and picture,
hits from ranked ids, and the timer a server wraps each stage in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

import numpy as np
from PIL import Image

from ..collection import Collection
from ..errors import ImageError, NotFound
from ..media.images import open_image
from ..records import ImageRecord
from ..schemas import Hit

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

    def vectors(self, image_id: int) -> np.ndarray:
        """(Q, D) float16: the indexed image's stored vectors, or NotFound saying why not."""
        self.record(image_id)
        vectors = self.collection.vectors_of(image_id)
        if vectors is None:
            raise NotFound(f"image {image_id} has no stored vectors")
        return vectors

    def picture(self, image_id: int) -> Image.Image:
        """The indexed image's picture, decoded from its file, or NotFound saying why not."""
        record = self.record(image_id)
        try:
            return open_image(record.path)
        except ImageError as exc:
            raise NotFound(f"image {image_id} ({record.path}) cannot be read: {exc}") from None

    def pictures(self, ids: list[int]) -> list[tuple[int, Image.Image]]:
        """(id, picture) of those of `ids` that are indexed and whose file reads."""
        records = self.collection.catalog.get_many(ids)
        pictures = []
        for image_id in ids:
            record = records.get(image_id)
            if record is None or record.status != "ok":
                continue
            try:
                pictures.append((image_id, open_image(record.path)))
            except ImageError:
                continue
        return pictures

    def hits(self, ranked: Iterable[tuple[int, float | None]]) -> list[Hit]:
        """Hits of (id, score) in their order; an id no longer in the catalog is left out."""
        ranked = list(ranked)
        records = self.collection.catalog.get_many(image for image, _ in ranked)
        return [Hit(id=image, path=records[image].path, score=score, caption=records[image].caption,
                    taken_at=taken_at(records[image]), text=records[image].text)
                for image, score in ranked if image in records]


def taken_at(record: ImageRecord) -> str:
    """When the picture was taken (EXIF), else when its file was last modified, ISO 8601."""
    when = record.taken_at or datetime.fromtimestamp(record.mtime)
    return when.isoformat(timespec="seconds")
