"""A seeded renderer of pictures with words on them, for the OCR tests and benchmark: DejaVu
and Liberation fonts (regular and bold), word heights of 20 to 72 px, contrasting colours, rotations up to 5
degrees, plain, gradient, noisy and busy backgrounds, 480 to 1280 px on the longer side, saved
as JPEG (quality 75 to 95) or PNG. Each picture holds 1 to 4 lines of 1 to 3 words, drawn
without replacement from a vocabulary of English words and letter-digit codes, so a given word
sits in few pictures and a search for it has a short exact answer. `page` draws the other
kind: a page dense with text, a heading over many lines of small print, for OCR's bound."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONTS = [
    f"/usr/share/fonts/truetype/dejavu/{name}.ttf"
    for name in ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSansMono",
                 "DejaVuSansMono-Bold")
] + [
    f"/usr/share/fonts/truetype/liberation/Liberation{name}.ttf"
    for name in ("Sans-Regular", "Sans-Bold", "Serif-Regular", "Serif-Bold", "Mono-Regular", "Mono-Bold")
]
WORDS = """
anchor basket candle dolphin engine falcon garden harbor island jacket kettle ladder marble
napkin orange pepper quartz rabbit saddle tunnel umbrella violin walnut yellow zipper bridge
castle desert forest glacier hammer iceberg jungle kitchen lantern meadow needle orchard
pillow rocket silver throne valley window blanket compass diamond feather giraffe horizon
journal kingdom leopard mountain notebook octopus painter pyramid radiator sandwich telescope
uniform volcano waterfall backpack calendar dinosaur elephant fountain graphite hospital
lighthouse magazine necklace pancake reindeer scissors tortoise vineyard warehouse acrobat
biscuit cabinet drummer emerald festival granite hedgehog insect juggler keyboard lemonade
mushroom nugget onion parrot quilt ribbon spinach trumpet velvet wizard bakery cottage
""".split()
CODES = "RE16 TGK42 A7B3 XK19 ZP404 MV22 QR8 HT305 BX71 LN56 KJ88 WD12".split()
VOCABULARY = WORDS + CODES


@dataclass(frozen=True)
class Rendered:
    path: Path
    words: list[str]  # as drawn, line by line, left to right


def render(folder: Path, count: int, seed: int) -> list[Rendered]:
    """`count` pictures under `folder` (created), the same ones for the same seed."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pool: list[str] = []
    rendered = []
    for number in range(count):
        lines = [rng.randint(1, 3) for _ in range(rng.randint(1, 4))]
        if len(pool) < sum(lines):
            pool = pool + rng.sample(VOCABULARY, len(VOCABULARY))  # every word once before any twice
        words = [[_cased(rng, pool.pop()) for _ in range(n)] for n in lines]
        image = _picture(rng, words)
        if rng.random() < 0.5:
            path = folder / f"text_{number:03d}.jpg"
            image.save(path, quality=rng.randint(75, 95))
        else:
            path = folder / f"text_{number:03d}.png"
            image.save(path)
        rendered.append(Rendered(path, [w for line in words for w in line]))
    return rendered


def page(path: Path, *, lines: int, seed: int) -> list[list[str]]:
    """A 1000 x 1400 white page saved at `path` (PNG): a heading of two words at 48 px, then
    `lines` lines of words at 24 px, each as wide as the page allows. Returns the words line
    by line, the heading first; at most 48 lines fit."""
    if lines > 48:
        raise ValueError(f"{lines} lines do not fit on the page (48 do)")
    rng = random.Random(seed)
    image = Image.new("RGB", (1000, 1400), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    heading = rng.sample(WORDS, 2)
    body = ImageFont.truetype(FONTS[0], 24)
    drawn = [[word.upper() for word in heading]]
    draw.text((30, 20), " ".join(drawn[0]), font=ImageFont.truetype(FONTS[1], 48), fill=(0, 0, 0))
    for row in range(lines):
        words = [rng.choice(VOCABULARY)]
        while body.getlength(" ".join(words) + " " + (word := rng.choice(VOCABULARY))) <= 940:
            words.append(word)
        draw.text((30, 100 + row * 26), " ".join(words), font=body, fill=(0, 0, 0))
        drawn.append(words)
    image.save(path)
    return drawn


def _cased(rng: random.Random, word: str) -> str:
    if word in CODES:
        return word
    return rng.choice((word, word.title(), word.upper()))


def _picture(rng: random.Random, lines: list[list[str]]) -> Image.Image:
    long_side = rng.randint(480, 1280)
    short_side = int(long_side * rng.uniform(0.6, 1.0))
    size = (long_side, short_side) if rng.random() < 0.6 else (short_side, long_side)
    light = rng.random() < 0.6  # light background with dark text, or the reverse
    image = _background(rng, size, light)
    ink = _colour(rng, 0.0, 0.3) if light else _colour(rng, 0.75, 1.0)
    block = _text_block(rng, lines, ink, size)
    block = block.rotate(rng.uniform(-5, 5), resample=Image.Resampling.BICUBIC, expand=True)
    x = rng.randint(0, max(0, size[0] - block.width))
    y = rng.randint(0, max(0, size[1] - block.height))
    image.paste(block, (x, y), block)
    return image


def _text_block(rng: random.Random, lines: list[list[str]], ink: tuple, size: tuple[int, int]) -> Image.Image:
    """The lines drawn on a transparent layer, shrunk until they fit 90% of the picture."""
    path = rng.choice(FONTS)
    height = rng.randint(20, 72)  # the font's size in pixels: ascender to descender
    texts = [" ".join(line) for line in lines]
    while True:
        font = ImageFont.truetype(path, height)
        widths = [int(font.getlength(text)) for text in texts]
        gap = int(height * rng.uniform(0.3, 0.8))
        width, total = max(widths) + 8, len(texts) * (height + gap) + 8
        if (width <= 0.9 * size[0] and total <= 0.9 * size[1]) or height <= 20:
            break
        height -= 2
    block = Image.new("RGBA", (width, total), (0, 0, 0, 0))
    draw = ImageDraw.Draw(block)
    for row, (text, line_width) in enumerate(zip(texts, widths, strict=True)):
        indent = rng.randint(0, width - 8 - line_width)
        draw.text((4 + indent, 4 + row * (height + gap)), text, font=font, fill=ink + (255,))
    return block


def _colour(rng: random.Random, low: float, high: float) -> tuple[int, int, int]:
    """A random colour whose luminance lies between `low` and `high` (0..1)."""
    while True:
        rgb = tuple(rng.randint(0, 255) for _ in range(3))
        if low <= (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255 <= high:
            return rgb


def _background(rng: random.Random, size: tuple[int, int], light: bool) -> Image.Image:
    low, high = (0.7, 1.0) if light else (0.0, 0.3)
    kind = rng.choice(("plain", "gradient", "noisy", "busy"))
    first, second = np.array(_colour(rng, low, high)), np.array(_colour(rng, low, high))
    if kind == "gradient":
        t = np.linspace(0, 1, size[0])[None, :, None] if rng.random() < 0.5 else \
            np.linspace(0, 1, size[1])[:, None, None]
        pixels = np.broadcast_to(first * (1 - t) + second * t, (size[1], size[0], 3))
    else:
        pixels = np.broadcast_to(first.astype(np.float64), (size[1], size[0], 3))
    if kind == "noisy":
        noise = np.random.default_rng(rng.randrange(2**32)).normal(0, 18, (size[1], size[0], 1))
        pixels = pixels + noise
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if kind == "busy":  # shapes and lines in the background's own luminance band, behind the text
        draw = ImageDraw.Draw(image)
        for _ in range(rng.randint(8, 25)):
            box = sorted(rng.sample(range(size[0]), 2)), sorted(rng.sample(range(size[1]), 2))
            corners = (box[0][0], box[1][0], box[0][1], box[1][1])
            shape = rng.choice((draw.ellipse, draw.rectangle, draw.line))
            colour = _colour(rng, low, high)
            if shape is draw.line:
                draw.line(corners, fill=colour, width=rng.randint(1, 6))
            else:
                shape(corners, fill=colour)
    return image
