"""The frozen image encoder, run once per image when both checkpoints share it.

BLIP-2 trains both stages on the same frozen ViT; each stage keeps its own LayerNorm on the
encoder output (LAVIS' `ln_vision`, HF's `post_layernorm`). So when the two checkpoints hold
identical encoder weights (checked by hash, not assumed) and preprocess pixels the same way,
the encoder output before `post_layernorm` is computed once and each model applies its own
`post_layernorm` before its Q-Former.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image
from transformers import Blip2VisionModel

POST_LAYERNORM = "post_layernorm."
SIDES = ("retrieval", "generation")


def encoder_fingerprint(vision: Blip2VisionModel) -> str:
    """Hash of every encoder tensor except `post_layernorm`, which differs between stages."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(vision.state_dict().items()):
        if name.startswith(POST_LAYERNORM):
            continue
        data = tensor.detach().to("cpu").contiguous()
        digest.update(name.encode())
        digest.update(str(data.dtype).encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def encoder_hidden(encoder, pixel_values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1 + patches, H): the output of `encoder` (its `embeddings` and `encoder` modules)
    before `post_layernorm`, in `dtype` (an encoder with int8 weights runs in float32 between
    the model's own dtype on either side)."""
    embeds = encoder.embeddings(pixel_values)
    inside = encoder.encoder.layers[0].layer_norm1.weight.dtype
    return encoder.encoder(inputs_embeds=embeds.to(inside)).last_hidden_state.to(dtype)


def memory_per_image(config, dtype: torch.dtype, copies: int = 2) -> int:
    """Bytes one image adds to an encoder batch, at most: a layer's activations (its
    hidden states, attention scores and MLP), `copies` deep. At ViT-g size in float32: 30 MB."""
    tokens = (config.image_size // config.patch_size) ** 2 + 1
    per_token = config.intermediate_size + 3 * config.hidden_size + config.num_attention_heads * tokens
    return tokens * per_token * dtype.itemsize * copies


@dataclass
class ImageBatch:
    """Preprocessed images plus encoder outputs computed so far, reusable across calls.

    `pixels` maps each side to its pixel tensor (the same tensor when the two image
    processors agree); it is empty for a batch made from stored features. `hidden` caches
    encoder outputs by key: "shared", or a side when run separately.
    """

    pixels: dict[str, torch.Tensor]
    hidden: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return next(iter(self.pixels.values() or self.hidden.values())).shape[0]


Images = Sequence[Image.Image] | ImageBatch  # what every engine method takes
