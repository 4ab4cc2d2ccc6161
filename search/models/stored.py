"""Stored features (`search.store.features`) to and from the engine's image batches: the
image encoder's output kept in the catalog, so that the match head and questions skip it."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..store.features import Features, stack
from .vision import ImageBatch
from .work import to_numpy


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
