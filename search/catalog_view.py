"""`CatalogView`: what a collection reads from its catalog, as plain records (images by id,
path, folder or content; filtered ids; caption search; stored features). `Collection` is
one, and adds what keeps the catalog, the vector index and the thumbnails in step."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np

from .catalog import Catalog
from .features import Features
from .records import ImageRecord


class CatalogView:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def image(self, image_id: int) -> ImageRecord | None:
        return self._catalog.get(image_id)

    def images(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        return self._catalog.get_many(ids)

    def image_at(self, path: str) -> ImageRecord | None:
        return self._catalog.record_for_path(path)

    def images_under(self, root: str) -> dict[str, ImageRecord]:
        """Rows whose path lies under the folder `root`, by path."""
        return self._catalog.records_under(root)

    def images_with_hash(self, content_hash: str) -> list[ImageRecord]:
        """Readable images with this content."""
        return self._catalog.records_with_hash(content_hash)

    def filter_ids(self, *, path_prefix: str | None = None, after: datetime | None = None,
                   before: datetime | None = None) -> np.ndarray:
        """Ids of readable images under `path_prefix` whose date (EXIF, else mtime) is in range."""
        return self._catalog.filter_ids(path_prefix=path_prefix, after=after, before=before)

    def caption_search(self, query: str, limit: int) -> list[int]:
        return self._catalog.caption_search(query, limit)

    @property
    def keeps_features(self) -> bool:
        """Whether indexing keeps each image's encoder output (`index --keep-features`, then
        remembered)."""
        return self._catalog.meta().get("features") == "kept"

    def features(self, ids: Iterable[int], key: str) -> dict[int, dict[str, Features]]:
        """The stored `key` features of those of `ids` that have them."""
        return self._catalog.features(ids, [key])

    def lacking_features(self, key: str) -> list[int]:
        """Readable images with no stored `key` features (indexed before they were kept)."""
        return self._catalog.lacking_features(key)
