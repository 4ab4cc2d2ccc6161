"""A second shapes-world renderer, written from the specification alone (docs/demo-world.md),
sharing no drawing code with demo/shapes.py: numpy rasterisation by point tests,
its own anti-aliasing (3 x 3 samples per pixel instead of drawing 4x larger and resampling),
a star sized by its circumscribed circle rather than fitted to its box, and a bilinear
resize step. The demo model must handle its images as well as its own renderer's."""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path

import numpy as np
from PIL import Image

from demo.shapes import COLORS, SHAPES, Shape, caption_for, questions_for

SAMPLES = 3  # anti-aliasing samples per pixel and axis


def _inside(kind: str, x: np.ndarray, y: np.ndarray, cx: float, cy: float, half: float) -> np.ndarray:
    dx, dy = x - cx, y - cy
    if kind == "circle":
        return dx**2 + dy**2 <= half**2
    if kind == "square":
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if kind == "triangle":  # apex at the top middle, base along the bottom
        top, bottom = cy - half, cy + half
        t = (y - top) / (bottom - top)
        return (t >= 0) & (t <= 1) & (np.abs(dx) <= t * half)
    angles = [math.radians(-90 + 36 * i) for i in range(10)]  # star: a pentagram on the circle
    radii = [half if i % 2 == 0 else half * 0.382 for i in range(10)]
    middle = cy + half * 0.1  # the pentagram spans -1 .. 0.81 of its radius vertically
    polygon = [(cx + r * math.cos(a), middle + r * math.sin(a)) for r, a in zip(radii, angles, strict=True)]
    inside = np.zeros(x.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(polygon, polygon[1:] + polygon[:1], strict=True):  # even-odd rule
        crosses = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (x < at)
    return inside


def _apart(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Separated along x or along y, by at least a pixel."""
    return max(a[0], b[0]) > min(a[2], b[2]) or max(a[1], b[1]) > min(a[3], b[3])


def _jitter(rng: random.Random, name: str) -> np.ndarray:
    return np.clip(np.array(COLORS[name]) + [rng.randint(-20, 20) for _ in range(3)], 0, 255)


def render(rng: random.Random) -> tuple[bytes, str, list[Shape], str]:
    """One image file (PNG or JPEG), with the shapes it holds, left to right, and its background."""
    side = rng.randint(64, 256)
    count = rng.choice((1, 2))
    names = rng.sample(list(COLORS), count + 1)
    kinds = rng.sample(SHAPES, count)
    while True:  # place without overlap
        shapes = []
        for kind, color in zip(kinds, names, strict=False):
            size = rng.choice(("large", "small"))
            extent = int(side * (rng.uniform(0.41, 0.59) if size == "large" else rng.uniform(0.16, 0.29)))
            x0, y0 = rng.randint(0, side - extent), rng.randint(0, side - extent)
            box = (x0, y0, x0 + extent, y0 + extent)
            if all(_apart(box, other.box) for other in shapes):
                shapes.append(Shape(kind, color, size, box))
        if len(shapes) == count:
            break
    shapes.sort(key=lambda s: s.centre[0])
    soft = rng.random() < 0.5
    offsets = (np.arange(SAMPLES) + 0.5) / SAMPLES if soft else np.array([0.5])
    grid = np.arange(side)[:, None] + offsets[None, :]  # (side, samples) sample positions per axis
    ys, xs = np.meshgrid(grid.ravel(), grid.ravel(), indexing="ij")
    canvas = np.broadcast_to(_jitter(rng, names[-1]), ys.shape + (3,)).astype(float)
    for shape in shapes:
        half = (shape.box[2] - shape.box[0]) / 2
        cx, cy = shape.centre
        inside = _inside(shape.kind, xs, ys, cx, cy, half)
        canvas = np.where(inside[..., None], _jitter(rng, shape.color), canvas)
    n = len(offsets)
    pixels = canvas.reshape(side, n, side, n, 3).mean(axis=(1, 3))
    image = Image.fromarray(pixels.round().astype(np.uint8))
    if rng.random() < 0.3:  # another resampling path: drawn at another size, resized bilinearly
        image = image.resize((side - 7, side - 7), Image.Resampling.BILINEAR).resize((side, side))
    buffer = io.BytesIO()
    jpeg = rng.random() < 0.5
    image.save(buffer, format="JPEG" if jpeg else "PNG", **({"quality": rng.randint(70, 95)} if jpeg else {}))
    return buffer.getvalue(), ("jpg" if jpeg else "png"), shapes, names[-1]


def write_collection(folder: Path, seed: int, count: int) -> Path:
    """Images and `records.jsonl` in the format `blip2-search eval` reads."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, records = random.Random(seed), []
    for i in range(count):
        data, ext, shapes, background = render(rng)
        name = f"other_{seed}_{i:05d}.{ext}"
        (folder / name).write_bytes(data)
        records.append({"image": name, "caption": caption_for(shapes, background)})
        qa = questions_for(shapes, background, rng)
        records += [{"image": name, "question": q, "answer": a} for q, a in qa]
    path = folder / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
