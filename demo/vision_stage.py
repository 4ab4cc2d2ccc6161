"""Stage 0 of the demo model: pretraining its image encoder on what each image holds.

BLIP-2 starts from an image encoder pretrained elsewhere (EVA-CLIP's ViT-g) and keeps it
frozen. The demo model has none to borrow, so it pretrains its own here, then freezes it for
stage 1 like BLIP-2, which lets stage 1 compute the encoder's output once (`encode`). Two
throwaway linear heads read the ViT's output: one, on the mean patch feature, predicts which
shapes the image holds, the colour of each, and the background; the other predicts, for
every patch, the share of it that background and each kind of shape cover, and the share
of each colour. The heads are not saved.

Why: learned only through the Q-Former's losses, the tiny ViT never told shapes apart (shape
questions stayed at chance, 0.28, after 34 minutes). With the image-level targets alone the
ViT still needed over 1,000 steps to start separating shapes; the per-patch targets roughly
halved that (set-of-shapes accuracy on 1,000 held-out images after 600 steps: 0.04 without,
0.13 with). The per-patch colours are there for binding: on two shapes, a patch's feature
should say both its kind and its colour. bfloat16 autocast makes a stage-0 step faster.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import Pool
from .shapes import COLORS, SHAPES, color_coverage, coverage

_COLORS = list(COLORS)
IMAGE_TARGETS = len(SHAPES) + len(SHAPES) * len(_COLORS) + len(_COLORS)
PATCH_KINDS = 1 + len(SHAPES)  # background, then each kind


@dataclass
class Targets:
    image: torch.Tensor  # (N, IMAGE_TARGETS) 0/1: shapes present, (colour, shape) pairs, background
    patches: torch.Tensor  # (N, grid * grid, PATCH_KINDS): what kind covers each patch, how much
    colors: torch.Tensor  # (N, grid * grid, len(COLORS)): what colour covers it, how much


def targets(pool: Pool, grid: int) -> Targets:
    image = torch.zeros(len(pool), IMAGE_TARGETS)
    pairs, background = len(SHAPES), len(SHAPES) * (1 + len(_COLORS))
    for i, (shapes, bg) in enumerate(zip(pool.shapes, pool.backgrounds, strict=True)):
        for shape in shapes:
            kind = SHAPES.index(shape.kind)
            image[i, kind] = 1
            image[i, pairs + _COLORS.index(shape.color) * len(SHAPES) + kind] = 1
        image[i, background + _COLORS.index(bg)] = 1
    rows = list(zip(pool.shapes, pool.backgrounds, pool.sides, strict=True))
    kinds = np.stack([coverage(s, side, grid) for s, _, side in rows])
    colors = np.stack([color_coverage(s, bg, side, grid) for s, bg, side in rows])
    return Targets(image, torch.from_numpy(kinds).float().view(len(pool), grid * grid, PATCH_KINDS),
                   torch.from_numpy(colors).float().view(len(pool), grid * grid, len(_COLORS)))


class AttributeHeads(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.image = nn.Linear(hidden, IMAGE_TARGETS)
        self.patches = nn.Linear(hidden, PATCH_KINDS + len(_COLORS))

    def forward(self, features: torch.Tensor, goal: Targets, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """`features`: the ViT's last hidden state, (B, 1 + patches, H), the [CLS] first."""
        image = self.image(features.mean(dim=1)).float()
        kinds, colors = self.patches(features[:, 1:]).float().split([PATCH_KINDS, len(_COLORS)], dim=-1)
        return {"attributes": F.binary_cross_entropy_with_logits(image, goal.image[index]),
                "patches": torch.sum(-goal.patches[index] * kinds.log_softmax(dim=-1), dim=-1).mean(),
                "patch_colors": torch.sum(-goal.colors[index] * colors.log_softmax(dim=-1), dim=-1).mean()}


def pretrain(
    vision: nn.Module, heads: AttributeHeads, goal: Targets, pool: Pool, *, seconds: float,
    batch_size: int, lr: float, seed: int, max_steps: int | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> list[dict]:
    """Stage 0: train `vision` and `heads` in place for `seconds` (or `max_steps`)."""
    params = [*vision.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    rng = np.random.default_rng(seed + 1)
    history, step, started, warmup = [], 0, time.monotonic(), 100
    vision.train()
    while (step < max_steps) if max_steps is not None else (time.monotonic() - started < seconds):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, (step + 1) / warmup)
        index = torch.as_tensor(rng.choice(len(pool), batch_size, replace=False))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features = vision(pixel_values=pool.pixels[index].float()).last_hidden_state
            parts = heads(features, goal, index)
        optimizer.zero_grad(set_to_none=True)
        sum(parts.values()).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        record(history, log, stage=0, step=step, seconds=time.monotonic() - started, parts=parts)
    return history


@torch.no_grad()
def encode(vision: nn.Module, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The encoder's output for every image, in float32 as at inference, stored as float16."""
    vision.eval()
    return torch.cat([vision(pixel_values=pixels[i : i + batch_size].float()).last_hidden_state.half()
                      for i in range(0, len(pixels), batch_size)])


def record(history: list[dict], log: Callable[[str], None], *, stage: int, step: int, seconds: float,
           parts: dict[str, torch.Tensor]) -> None:
    """Every 50th step (and the first) of either stage: the losses, in `history` and the log."""
    if step % 50 == 0 or step == 1:
        entry = {"stage": stage, "step": step, "seconds": round(seconds),
                 **{k: round(float(v.detach()), 4) for k, v in parts.items()}}
        history.append(entry)
        log(json.dumps(entry))
