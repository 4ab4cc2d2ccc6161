"""Stored features (`search.store.features`) to and from the engine's image batches: the
image encoder's output kept in the catalog, so that the match head and questions skip it."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..store.features import Features, stack
from .vision import SIDES, ImageBatch, Images
from .work import model_work, to_numpy


def compact(batch: ImageBatch, keys: Sequence[str]) -> list[dict[str, Features]]:
    """Each image's encoder output under `keys` (computed in `batch.hidden`), quantized."""
    out: list[dict[str, Features]] = [{} for _ in range(len(batch))]
    for key in keys:
        for item, hidden in zip(out, to_numpy(batch.hidden[key]), strict=True):
            item[key] = Features.quantize(hidden)
    return out


def batch(kept: Sequence[dict[str, Features]], key: str, device: torch.device, dtype: torch.dtype
          ) -> ImageBatch | None:
    """A batch whose encoder output under `key` is the stored features', or None when one of
    them lacks it."""
    if not kept or any(key not in item for item in kept):
        return None
    hidden = torch.from_numpy(stack([item[key] for item in kept])).to(device, dtype)
    return ImageBatch(pixels={}, hidden={key: hidden})


# The engine's methods for stored features (`Blip2Engine.features` and the rest).

def feature_key(self, side: str) -> str:
    """The key under which an index run stores `side`'s encoder output: "shared" when one
    pass feeds both stages."""
    return "shared" if self.encoder_mode == "shared" else side


def feature_keys(side: str) -> tuple[str, str]:
    """The keys that may hold `side`'s stored encoder output, whichever way it was run."""
    return side, "shared"


@model_work
def features(self, images: Images, sides: Sequence[str] = SIDES) -> list[dict[str, Features]]:
    """Each image's encoder output for `sides`, compact, by key; encodes if needed."""
    images = self.encode(images)
    for side in sides:
        images.hidden.setdefault(self.feature_key(side), self._hidden(images, side))
    return compact(images, list(dict.fromkeys(self.feature_key(side) for side in sides)))


def from_features(self, kept: Sequence[dict[str, Features]], side: str) -> ImageBatch | None:
    """A batch whose encoder output for `side` comes from stored features, or None when one
    of them lacks it."""
    for key in feature_keys(side):
        found = batch(kept, key, self.device, self._float)
        if found is not None:
            return found
    return None
