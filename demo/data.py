"""Training data for the demo model: a pool of rendered shapes-world samples, preprocessed
exactly as the engine preprocesses images, with captions, questions and hard negatives."""

from __future__ import annotations

import io
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from . import phrases as phrases_module
from .shapes import COLORS, SHAPES, Sample, Shape, caption_for, render

SHAPE_QUESTION_WEIGHT = 2.0  # shape was the hard attribute: ask about it more often
BINDING_QUESTION_WEIGHT = 3.0  # on two shapes, questions that tie a colour to a kind


@dataclass
class Pool:
    pixels: torch.Tensor  # (N, 3, S, S) float16, normalised like the image processor's output
    captions: list[str]
    shapes: list[list[Shape]]
    backgrounds: list[str]
    qa: list[list[tuple[str, str]]]
    sides: list[int]  # the rendered image's side, in pixels (shape boxes are in its pixels)

    def __len__(self) -> int:
        return len(self.captions)


def _render_chunk(args: tuple[int, int]) -> list[tuple[bytes, str, list[Shape], str, list, int]]:
    seed, count = args
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        sample: Sample = render(rng)
        out.append((sample.encode(), sample.caption, sample.shapes, sample.background, sample.qa,
                    sample.image.width))
    return out


def build_pool(processor, *, seed: int, count: int, workers: int = 2, chunk: int = 500) -> Pool:
    """Render `count` samples (seeded, in worker processes), round-trip them through their
    file format (JPEG artefacts included) and preprocess them with `processor`."""
    chunks = (count + chunk - 1) // chunk
    jobs = [(seed * 1_000_003 + i, min(chunk, count - i * chunk)) for i in range(chunks)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            rendered = [item for part in pool.map(_render_chunk, jobs) for item in part]
    else:
        rendered = [item for job in jobs for item in _render_chunk(job)]
    pixels = []
    for start in range(0, len(rendered), 256):
        images = [Image.open(io.BytesIO(r[0])).convert("RGB") for r in rendered[start : start + 256]]
        pixels.append(processor(images, return_tensors="pt")["pixel_values"].to(torch.float16))
    return Pool(torch.cat(pixels), [r[1] for r in rendered], [r[2] for r in rendered],
                [r[3] for r in rendered], [r[4] for r in rendered], [r[5] for r in rendered])


def _about_shape(question: str) -> bool:
    return question.startswith(("what shape", "is there"))


def _binds(question: str) -> bool:
    """Questions that name one attribute of a shape and ask another: on two shapes, which goes
    with which."""
    return question.startswith("what shape") or (question.startswith("what color is the ")
                                                  and not question.endswith("background?"))


def pick_question(
    qa: list[tuple[str, str]], rng: random.Random, shape_focus: bool = False, two_shapes: bool = False
) -> tuple[str, str]:
    if shape_focus:  # curriculum: only questions whose answer depends on the shape
        return rng.choice([item for item in qa if _about_shape(item[0])])
    weights = [BINDING_QUESTION_WEIGHT if two_shapes and _binds(q)
               else SHAPE_QUESTION_WEIGHT if q.startswith("what shape") else 1.0 for q, _ in qa]
    return rng.choices(qa, weights=weights)[0]


def hard_negative(shapes: list[Shape], background: str, rng: random.Random, shape_focus: bool = False) -> str:
    """A caption that differs from the true one in one attribute: mostly the shape (the hard
    case), else a colour, which colour goes with which shape, the background, the size, or
    the left-right order."""
    shapes = list(shapes)
    for _ in range(20):
        roll = 0.0 if shape_focus else rng.random()  # curriculum: swap the shape only
        i = rng.randrange(len(shapes))
        s = shapes[i]
        taken = {x.color for x in shapes} | {background}
        new_shapes, new_bg = list(shapes), background
        if roll < 0.35:
            kinds = [k for k in SHAPES if k not in {x.kind for x in shapes}]
            new_shapes[i] = Shape(rng.choice(kinds), s.color, s.size, s.box)
        elif roll < 0.55 or (roll < 0.7 and len(shapes) == 1):
            new_shapes[i] = Shape(s.kind, rng.choice([c for c in COLORS if c not in taken]), s.size, s.box)
        elif roll < 0.7:  # binding: the two shapes trade colours
            a, b = shapes
            new_shapes = [Shape(a.kind, b.color, a.size, a.box), Shape(b.kind, a.color, b.size, b.box)]
        elif roll < 0.8:
            new_bg = rng.choice([c for c in COLORS if c not in taken])
        elif len(shapes) == 1:
            new_shapes[0] = Shape(s.kind, s.color, "small" if s.size == "large" else "large", s.box)
        else:
            new_shapes = shapes[::-1]
        caption = caption_for(new_shapes, new_bg)
        if caption != caption_for(shapes, background):
            return caption
    raise RuntimeError("no negative found")  # cannot happen: every branch changes the caption


def batch(pool: Pool, indices: np.ndarray, rng: random.Random, shape_focus: bool = False) -> dict:
    """Captions, one question per image, one hard-negative caption per image, and one phrase
    per image (part of a caption, as users type queries) with a phrase that does not fit it.
    `phrase_matches[i, j]`: phrase i fits image j. `shape_focus`: questions and negatives
    that only the shape can settle. The pixels are the caller's to fetch (`pool.pixels`)."""
    questions = [pick_question(pool.qa[i], rng, shape_focus, len(pool.shapes[i]) == 2) for i in indices]
    phrases = [phrases_module.phrase_for(pool.shapes[i], pool.backgrounds[i], rng) for i in indices]
    return {
        "index": indices,
        "captions": [pool.captions[i] for i in indices],
        "questions": [q for q, _ in questions],
        "answers": [a for _, a in questions],
        "negatives": [hard_negative(pool.shapes[i], pool.backgrounds[i], rng, shape_focus) for i in indices],
        "phrases": [p.text for p in phrases],
        "phrase_negatives": [phrases_module.mismatch(p, pool.shapes[i], pool.backgrounds[i], rng).text
                             for p, i in zip(phrases, indices, strict=True)],
        "phrase_matches": torch.tensor([[p.fits(pool.shapes[j], pool.backgrounds[j]) for j in indices]
                                        for p in phrases]),
    }
