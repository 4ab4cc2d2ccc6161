"""`CatalogView`: what a collection reads from its catalog, as plain records (the model that
built it; images by id, path, folder or content; filtered ids; caption and text search;
stored features). `Collection` is
one, and adds what keeps the catalog, the vector index and the thumbnails in step."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .catalog import Catalog
from .errors import CollectionError
from .features import Features
from .presets import DEFAULT_PRESET, resolve
from .records import Fingerprints, ImageRecord, ModelInfo, Selection


class CatalogView:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    # -- the model that built the index ------------------------------------------------------

    @property
    def model(self) -> ModelInfo | None:
        meta = self._catalog.meta()
        if "model" not in meta:
            return None
        return ModelInfo(meta["model"], int(meta["queries"]), int(meta["dim"]))

    def check_model(self, name: str, shape: tuple[int, int] | None = None) -> None:
        """Refuse a model (and, when given, a vector shape) other than the index's own; an
        index with no model yet takes any."""
        current = self.model
        if current is None or (current.name == name and shape in (None, (current.queries, current.dim))):
            return
        raise CollectionError(
            f"the index at {self.folder} was built with model {current.name} "
            f"({current.queries}x{current.dim} vectors), not {name}; use that model, or another --index"
        )

    def model_to_load(self, requested: str | None) -> str:
        """`requested` (a flag), else the model that built the index, else the default preset;
        a model other than the index's is refused before anything loads."""
        if requested is None:
            current = self.model
            return current.name if current else DEFAULT_PRESET
        self.check_model(resolve(requested).name)
        return requested

    @property
    def index_type(self) -> str:
        return self._catalog.meta().get("index_type", "auto")

    # -- images -------------------------------------------------------------------------------

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

    def fingerprints(self) -> Fingerprints:
        """Readable images' paths, content and picture hashes, pixels and dates, by id."""
        return self._catalog.fingerprints()

    def filter_ids(self, selection: Selection | None = None) -> np.ndarray:
        """Ids of the readable images `selection` lets through (every one by default), ascending."""
        return self.dated_ids(selection or Selection())[0]

    def dated_ids(self, selection: Selection) -> tuple[np.ndarray, np.ndarray]:
        """(ids, dates): the readable images `selection` lets through, ascending, and each
        one's date (EXIF, else modified) in seconds since the epoch."""
        return self._catalog.dated_ids(path_prefix=selection.path_prefix, path_part=selection.path_part,
                                       after=selection.after, before=selection.before,
                                       caption=selection.caption, text=selection.text)

    def browse(self, offset: int, limit: int, sort: str = "newest") -> tuple[int, list[ImageRecord]]:
        """(how many images are indexed, a page of them): newest or oldest first (EXIF date,
        else modified), or by path."""
        if sort == "path":
            total, ids = self._catalog.ids_by_path(offset, limit)
        else:
            every, dates = self.dated_ids(Selection())
            order = np.lexsort((every, dates if sort == "oldest" else -dates))
            total, ids = len(every), every[order[offset : offset + limit]].tolist()
        records = self.images(ids)
        return total, [records[i] for i in ids if i in records]

    def caption_search(self, query: str, limit: int) -> list[int]:
        return self._catalog.caption_search(query, limit)

    def text_scores(self, phrase: str) -> dict[int, float]:
        """Images whose text (OCR) holds every word of `phrase`, tolerantly (`textmatch`),
        with how well, 0..1."""
        return self._catalog.text_scores(phrase)

    def text_search(self, query: str, limit: int) -> list[int]:
        """Ids whose text holds words of `query`, the most and closest first."""
        return self._catalog.text_search(query, limit)

    def unread(self, *, text: bool = False, picture: bool = False) -> list[int]:
        """Readable images with no text read yet (`text`) or no picture hash (`picture`)."""
        return self._catalog.unread(text=text, picture=picture)

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
