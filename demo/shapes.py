"""The shapes world: a deterministic generator of images, captions and questions.

It follows the fixed specification in docs/demo-world.md: circles, squares,
upright triangles and upright five-point stars in eight colours (±20 jitter per channel),
one or two non-overlapping shapes on a plain background of another colour, large (40-60 %
of the side) or small (15-30 %), square images of 64-256 px saved as PNG or JPEG (quality
70 or more). Everything is a function of the seed.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star")
COLORS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 220, 40),
    "purple": (140, 60, 180), "orange": (245, 140, 30), "white": (245, 245, 245), "black": (20, 20, 20),
}
SIZES = {"large": (0.40, 0.60), "small": (0.15, 0.30)}
JITTER = 20
SIDES = (64, 256)
SUPERSAMPLE = 4  # soft edges: drawn this much larger, then downsampled


@dataclass(frozen=True)
class Shape:
    kind: str
    color: str
    size: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, exclusive ends

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass
class Sample:
    image: Image.Image
    caption: str
    shapes: list[Shape]  # left to right
    background: str
    qa: list[tuple[str, str]] = field(default_factory=list)
    format: str = "PNG"
    quality: int | None = None

    def encode(self) -> bytes:
        """The image file's bytes, in the sample's format."""
        buffer = io.BytesIO()
        options = {"quality": self.quality} if self.format == "JPEG" else {}
        self.image.save(buffer, format=self.format, **options)
        return buffer.getvalue()


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption_for(shapes: list[Shape], background: str) -> str:
    """`a {size} {color} {shape} on a {bg} background`, or two shapes, left one first."""
    if len(shapes) == 1:
        (s,) = shapes
        on = f"on {article(background)} {background} background"
        return f"{article(s.size)} {s.size} {s.color} {s.kind} {on}"
    first, second = shapes
    return (f"{article(first.color)} {first.color} {first.kind} and {article(second.color)} {second.color} "
            f"{second.kind} on {article(background)} {background} background")


def questions_for(shapes: list[Shape], background: str, rng: random.Random) -> list[tuple[str, str]]:
    """One question of each kind, with one-word answers. Two-shape images hold two kinds and
    two colours, so every question has exactly one answer."""
    shape = rng.choice(shapes)
    present = {(s.color, s.kind) for s in shapes}
    absent_kind = rng.choice([k for k in SHAPES if k not in {s.kind for s in shapes}])
    if rng.random() < 0.5:
        asked_kind, kind_answer = shape.kind, "yes"
    else:
        asked_kind, kind_answer = absent_kind, "no"
    if rng.random() < 0.5:
        asked_pair, pair_answer = (shape.color, shape.kind), "yes"
    else:
        asked_pair = rng.choice([(c, k) for c in COLORS for k in SHAPES if (c, k) not in present])
        pair_answer = "no"
    return [
        (f"what color is the {shape.kind}?", shape.color),
        (f"what shape is {shape.color}?", shape.kind),
        ("what color is the background?", background),
        ("how many shapes are there?", "one" if len(shapes) == 1 else "two"),
        (f"is there a {asked_kind}?", kind_answer),
        (f"is there {article(asked_pair[0])} {asked_pair[0]} {asked_pair[1]}?", pair_answer),
    ]


def render(rng: random.Random, *, side: int | None = None, count: int | None = None,
           soft: bool | None = None) -> Sample:
    """One sample; unspecified choices are drawn from `rng`."""
    side = side or rng.randint(*SIDES)
    count = count or rng.choice((1, 2))
    soft = rng.random() < 0.5 if soft is None else soft
    kinds = rng.sample(SHAPES, count)
    colors = rng.sample(list(COLORS), count + 1)  # the last one is the background
    shapes = _place(rng, side, kinds, colors[:count])
    background = colors[-1]
    scale = SUPERSAMPLE if soft else 1
    image = Image.new("RGB", (side * scale, side * scale), _jitter(rng, COLORS[background]))
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        _draw(draw, shape, _jitter(rng, COLORS[shape.color]), scale)
    if soft:
        image = image.resize((side, side), Image.Resampling.LANCZOS)
    jpeg = rng.random() < 0.5
    return Sample(
        image=image, caption=caption_for(shapes, background), shapes=shapes, background=background,
        qa=questions_for(shapes, background, rng), format="JPEG" if jpeg else "PNG",
        quality=rng.randint(70, 95) if jpeg else None,
    )


def generate(seed: int, count: int) -> Iterator[Sample]:
    rng = random.Random(seed)
    for _ in range(count):
        yield render(rng)


def write_collection(folder: Path, seed: int, count: int) -> Path:
    """Write `count` images and `records.jsonl` (caption and question records, as `eval` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i, sample in enumerate(generate(seed, count)):
        name = f"shapes_{seed}_{i:05d}.{'jpg' if sample.format == 'JPEG' else 'png'}"
        (folder / name).write_bytes(sample.encode())
        records.append({"image": name, "caption": sample.caption})
        records += [{"image": name, "question": q, "answer": a} for q, a in sample.qa]
    path = folder / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def coverage(shapes: list[Shape], side: int, grid: int, sub: int = 4) -> np.ndarray:
    """(grid, grid, 1 + len(SHAPES)): the share of each cell of a grid laid over the image that
    is background and that each kind of shape covers, sampled at sub x sub points per cell."""
    classes = [0] + [1 + SHAPES.index(s.kind) for s in shapes]
    return _shares(_cells(shapes, side, grid, sub), classes, 1 + len(SHAPES))


def color_coverage(shapes: list[Shape], background: str, side: int, grid: int, sub: int = 4) -> np.ndarray:
    """(grid, grid, len(COLORS)): the share of each cell that each colour covers, the
    background's included."""
    names = list(COLORS)
    classes = [names.index(background)] + [names.index(s.color) for s in shapes]
    return _shares(_cells(shapes, side, grid, sub), classes, len(COLORS))


def _cells(shapes: list[Shape], side: int, grid: int, sub: int) -> np.ndarray:
    """(grid, grid, sub * sub): what covers each sample point, 0 for the background, else
    1 + the shape's position in `shapes`."""
    fine = grid * sub
    mask = Image.new("L", (fine, fine), 0)
    draw = ImageDraw.Draw(mask)
    for i, shape in enumerate(shapes):
        box = tuple(v * fine / side for v in shape.box)
        _draw(draw, Shape(shape.kind, shape.color, shape.size, box), 1 + i, 1)
    return np.asarray(mask).reshape(grid, sub, grid, sub).transpose(0, 2, 1, 3).reshape(grid, grid, -1)


def _shares(cells: np.ndarray, classes: list[int], count: int) -> np.ndarray:
    labels = np.asarray(classes)[cells]
    return (labels[..., None] == np.arange(count)).mean(axis=2)


def _jitter(rng: random.Random, rgb: tuple[int, int, int]) -> tuple[int, ...]:
    return tuple(min(255, max(0, c + rng.randint(-JITTER, JITTER))) for c in rgb)


def _place(rng: random.Random, side: int, kinds: list[str], colors: list[str]) -> list[Shape]:
    """Sizes and positions with no overlap (boxes apart by a pixel), sorted left to right."""
    while True:
        shapes = []
        for kind, color in zip(kinds, colors, strict=True):
            size = rng.choice(tuple(SIZES))
            low, high = SIZES[size]
            extent = max(4, round(side * rng.uniform(low, high)))
            for _ in range(50):
                x0, y0 = rng.randint(0, side - extent), rng.randint(0, side - extent)
                box = (x0, y0, x0 + extent, y0 + extent)
                if all(_apart(box, other.box) for other in shapes):
                    shapes.append(Shape(kind, color, size, box))
                    break
            else:
                break  # no room left: draw the sizes again
        if len(shapes) == len(kinds):
            return sorted(shapes, key=lambda s: s.centre[0])


def _apart(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, fill: tuple[int, ...], scale: int) -> None:
    x0, y0, x1, y1 = (v * scale for v in shape.box)
    right, bottom = x1 - 1, y1 - 1
    if shape.kind == "circle":
        draw.ellipse((x0, y0, right, bottom), fill=fill)
    elif shape.kind == "square":
        draw.rectangle((x0, y0, right, bottom), fill=fill)
    elif shape.kind == "triangle":
        draw.polygon([((x0 + right) / 2, y0), (right, bottom), (x0, bottom)], fill=fill)
    else:
        draw.polygon(_star(x0, y0, right, bottom), fill=fill)


def _star(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    """Five points, one straight up, fitted to the box (outer radius touches its edges)."""
    outer = [(math.cos(math.radians(-90 + 72 * i)), math.sin(math.radians(-90 + 72 * i))) for i in range(5)]
    inner_ratio = 0.382  # a regular pentagram's inner/outer radius
    points = []
    for i in range(10):
        angle = math.radians(-90 + 36 * i)
        radius = 1.0 if i % 2 == 0 else inner_ratio
        points.append((radius * math.cos(angle), radius * math.sin(angle)))
    low_x, high_x = min(p[0] for p in outer), max(p[0] for p in outer)
    low_y, high_y = min(p[1] for p in outer), max(p[1] for p in outer)
    width, height = x1 - x0, y1 - y0
    return [(x0 + (px - low_x) / (high_x - low_x) * width, y0 + (py - low_y) / (high_y - low_y) * height)
            for px, py in points]
