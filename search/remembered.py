"""What an index remembers in its catalog's meta: its model and vector shape, the kind of
vector index it wants, and whether it keeps features. A part of `Collection`."""

from __future__ import annotations

from .config import IndexType, choices
from .errors import CollectionError
from .presets import DEFAULT_PRESET, resolve
from .records import ModelInfo


class Remembered:
    @property
    def model(self) -> ModelInfo | None:
        meta = self.catalog.meta()
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

    def bind_model(self, info: ModelInfo) -> None:
        """Record the model on first use; refuse another model on an existing index."""
        if self.model is None:
            self.catalog.set_meta(model=info.name, queries=info.queries, dim=info.dim)
            self._index.start(self._wanted())
        else:
            self.check_model(info.name, (info.queries, info.dim))

    @property
    def index_type(self) -> str:
        return self.catalog.meta().get("index_type", "auto")

    def set_index_type(self, index_type: IndexType) -> None:
        """Choose the vector index kind (auto, exact or compressed); an existing index is
        rebuilt into it from the catalog's vectors, with no model call."""
        if index_type not in choices(IndexType):
            known = ", ".join(choices(IndexType))
            raise CollectionError(f"unknown index type {index_type!r}: use one of {known}")
        if index_type != self.index_type:
            self.catalog.set_meta(index_type=index_type)
            if self._index.current is not None:
                self.save()

    @property
    def keeps_features(self) -> bool:
        """Whether indexing keeps each image's encoder output (`index --keep-features`, then
        remembered)."""
        return self.catalog.meta().get("features") == "kept"

    def keep_features(self) -> None:
        self.catalog.set_meta(features="kept")
