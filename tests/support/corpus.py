"""Seeded pictures for tests: images of every mode, small corpora of distinct PNGs, and the
vectors of an indexed collection in id order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_images(seed: int, count: int) -> list[Image.Image]:
    """Seeded images of mixed sizes and modes, with structure (blocks of colour) and noise."""
    rng = np.random.default_rng(seed)
    modes = ["RGB", "L", "RGBA", "P", "CMYK", "I;16", "LA", "RGB"]
    images = []
    for i in range(count):
        side_w, side_h = (int(v) for v in rng.integers(20, 90, size=2))
        base = rng.integers(0, 256, size=(side_h // 4 + 1, side_w // 4 + 1, 3), dtype=np.uint8)
        pixels = np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))[:side_h, :side_w]
        pixels = np.clip(pixels + rng.integers(-20, 20, size=pixels.shape), 0, 255).astype(np.uint8)
        rgb = Image.fromarray(pixels, "RGB")
        mode = modes[i % len(modes)]
        if mode == "I;16":
            gray = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
            images.append(Image.fromarray(gray))  # uint16 -> mode I;16
        elif mode == "P":
            images.append(rgb.quantize(colors=32))
        else:
            images.append(rgb.convert(mode))
    return images


def write_corpus(folder: Path, count: int, seed: int = 0, side: int = 32) -> list[Path]:
    """`count` distinct small PNGs (random blocks of colour) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        base = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        pixels = np.kron(base, np.ones((side // 4, side // 4, 1), dtype=np.uint8))
        path = folder / f"img{i:04d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def all_vectors(collection) -> tuple[np.ndarray, np.ndarray]:
    """(ids, (n, Q, D) float32 vectors) of every indexed image, in id order."""
    chunks = list(collection.iter_vectors())
    if not chunks:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0, 0), dtype=np.float32)
    ids = np.concatenate([ids for ids, _ in chunks])
    order = np.argsort(ids, kind="stable")
    vectors = np.concatenate([v.astype(np.float32) for _, v in chunks])
    return ids[order], vectors[order]
