"""Where in an image the match head found a text: a Grad-CAM over the Q-Former's
cross-attention, as LAVIS's `compute_gradcam` does for BLIP's text encoder.

For each cross-attention layer, the attention of the 32 query tokens on the image patches is
weighted by the positive part of its gradient with respect to the match head's "match" logit
(averaged over the heads), summed over the query tokens and the layers, and laid out on the
encoder's patch grid. The weights are not touched: the gradient flows from the encoder
output, which is cloned out of inference mode to require it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from transformers import Blip2ForImageTextRetrieval

from .retrieval import match_logits


def gradcam(model: Blip2ForImageTextRetrieval, image_embeds: torch.Tensor, input_ids: torch.Tensor,
            attention_mask: torch.Tensor) -> np.ndarray:
    """(rows, cols) in [0, 1] over one image's patches: where the match evidence lies.
    `image_embeds` is (1, 1 + rows x cols, H), after the model's post_layernorm."""
    embeds = image_embeds.detach().clone().requires_grad_(True)
    layers = [layer.crossattention.attention for layer in model.qformer.encoder.layer
              if layer.has_cross_attention]
    weights: list[torch.Tensor] = []

    def keep(module, args, output) -> None:
        output[1].retain_grad()
        weights.append(output[1])

    hooks = [layer.register_forward_hook(keep) for layer in layers]
    config = model.qformer.config
    implementation, config._attn_implementation = config._attn_implementation, "eager"  # returns weights
    try:
        with torch.enable_grad():
            match_logits(model, embeds, input_ids, attention_mask)[:, 1].sum().backward()
    finally:
        config._attn_implementation = implementation
        for hook in hooks:
            hook.remove()
    cam = sum((w.detach() * w.grad.clamp(min=0)).float().mean(dim=1)[0].sum(dim=0) for w in weights)  # (N,)
    patches = cam.shape[0] - 1  # the first position is the encoder's [CLS]
    side = math.isqrt(patches)
    if side * side != patches:
        raise ValueError(f"{patches} patches do not make a square grid")
    grid = cam[1:].reshape(side, side).cpu().numpy()
    top = grid.max()
    return grid / top if top > 0 else grid
