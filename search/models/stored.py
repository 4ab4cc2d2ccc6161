"""The engine's stored features (`search.features`): the image encoder's output kept in the
catalog, so that the match head and questions skip the encoder. `Blip2Engine` has them."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..features import Features, stack
from .vision import SIDES, ImageBatch, Images
from .work import model_work, to_numpy


class StoredFeatures:
    """Needs the engine's `encode`, `_image_embeds`, `encoder_mode`, `device` and its two
    models (`_ret`, `_gen`)."""

    def feature_key(self, side: str) -> str:
        """The key under which `side`'s encoder output is stored: "shared" when one pass
        feeds both stages."""
        return "shared" if self.encoder_mode == "shared" else side

    @model_work
    def features(self, images: Images, sides: Sequence[str] = SIDES) -> list[dict[str, Features]]:
        """Each image's encoder output for `sides`, compact, by key; encodes if needed."""
        batch = self.encode(images)
        out: list[dict[str, Features]] = [{} for _ in range(len(batch))]
        for side in sides:
            key = self.feature_key(side)
            if any(key in item for item in out):
                continue
            if key not in batch.hidden:
                self._image_embeds(batch, side)
            for item, hidden in zip(out, to_numpy(batch.hidden[key]), strict=True):
                item[key] = Features.quantize(hidden)
        return out

    def from_features(self, stored: Sequence[dict[str, Features]], side: str) -> ImageBatch | None:
        """A batch whose encoder output for `side` comes from stored features, or None when
        one of them lacks it."""
        key = self.feature_key(side)
        if not stored or any(key not in item for item in stored):
            return None
        model = self._ret if side == "retrieval" else self._gen
        dtype = model.vision_model.post_layernorm.weight.dtype
        hidden = torch.from_numpy(stack([item[key] for item in stored])).to(self.device, dtype)
        return ImageBatch(pixels={}, hidden={key: hidden})
