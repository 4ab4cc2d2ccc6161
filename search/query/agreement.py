"""Whether two candidate near copies show the same content, from what the index stored: their
thumbnails' pixels, aligned, and the text OCR read in them. Layout and meaning (the
duplicate finder's first signals) agree for look-alikes, inverted pictures, and documents or
screenshots of one template; content does not.

- pixels: each thumbnail's colours at SIDE x SIDE are compared with the other one cropped by
  up to MAX_CROP a side (the crop found by a coordinate search in steps of 4, 2, 1 and 0.5 %
  of a side, from none): their best normalised correlation (each colour channel less its
  mean), rescaled so that PIXEL_FLOOR is 0 and 1 is 1. On `tests.support.mixed_duplicates`
  every resized, re-encoded, lightly cropped, brighter or darker copy scored 0.53 or more,
  and no colour-inverted (about -1) or mirrored picture, no look-alike (the same shapes
  drawn elsewhere) and no other original more than 0. Pairs whose uncropped pictures
  correlate below QUICK_FLOOR at QUICK x QUICK are not searched (every copy there: 0.49 or
  more): most candidates that differ cost one comparison, not a hundred.
- text: when either picture holds TEXT_WORDS words or more, the share of their word sequences
  that agree (difflib's ratio over case-folded words), rescaled so that TEXT_FLOOR is 0 and 1
  is 1. Invoices from one template, or chat screens of one layout, correlate at 0.99 in
  pixels at this size; their words agree at 0.62 or less, a copy's at 0.98 or more. Without
  OCR text (an index made with `--no-ocr`) only the pixels decide.
"""

from __future__ import annotations

import difflib
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..media.textmatch import words

SIDE = 32  # the grey picture compared
WORKING = 96  # each thumbnail is shrunk to this once; crops are cut from it
MAX_CROP = 0.08  # the most a copy is taken to be cropped on one side
STEPS = (0.04, 0.02, 0.01, 0.005)
PIXEL_FLOOR = 0.9  # correlations at or below this mean different pictures
SURE = 0.98  # an uncropped correlation this high needs no search for a crop
QUICK, QUICK_FLOOR = 16, 0.3  # uncropped at 16 x 16, copies correlated at 0.49 or more: below 0.3, no search
TEXT_WORDS = 5  # fewer words on both sides: stray letters, not a text to compare
TEXT_FLOOR = 0.8  # word agreements at or below this mean different texts
BANDS, BAND = 4, 8  # MinHash bands over OCR words (`text_pairs`)
_PRIME = np.uint64(2**31 - 1)
_SALT_A, _SALT_B = np.random.default_rng(7).integers(1, 2**31 - 1, (2, BANDS * BAND), dtype=np.uint64)


@dataclass(frozen=True)
class Content:
    """How far two pictures' content agrees (each 0..1, 1 the same), and what the alignment
    found: `crop`, the share cut from the sides of the cropped one (left, top, right, bottom),
    and `light`, the second picture's mean brightness over the first's."""

    pixels: float
    text: float | None  # None: neither holds text enough to compare
    crop: tuple[float, float, float, float]
    light: float

    @property
    def score(self) -> float:
        return self.pixels if self.text is None else min(self.pixels, self.text)


@dataclass(frozen=True)
class Look:
    """A picture as the comparison sees it: its uncropped QUICK x QUICK grid, its mean
    brightness, and the picture at most WORKING px (`image`, made again when asked for)."""

    quick: np.ndarray
    brightness: float
    image: Callable[[], Image.Image]

    @classmethod
    def of(cls, image: Image.Image, picture: Callable[[], Image.Image] | None = None) -> Look:
        """`image`'s look; `picture` makes it again (by default it is kept)."""
        small = _small(image)
        brightness = float(np.asarray(small, dtype=np.float32).mean())
        quick = _grid(small, (0, 0, *small.size), QUICK).astype(np.float16)
        return cls(quick, brightness, picture or (lambda: small))


class Looks:
    """Each picture's `Look`, its grid kept for every picture (1.5 KB), its picture for the
    last KEPT asked for: `load(row)` gives its thumbnail (`thumbnail`), or None when it has
    none (then its content cannot be compared). `loaded` counts the thumbnails read."""

    KEPT = 256

    def __init__(self, load: Callable[[int], Image.Image | None]) -> None:
        self._load, self._seen, self.loaded = load, {}, 0
        self._pictures: OrderedDict[int, Image.Image | None] = OrderedDict()

    def __call__(self, row: int) -> Look | None:
        if row not in self._seen:
            small = self._picture(row)
            self._seen[row] = None if small is None else Look.of(small, lambda: self._picture(row))
        return self._seen[row]

    def _picture(self, row: int) -> Image.Image | None:
        if row in self._pictures:
            self._pictures.move_to_end(row)
            return self._pictures[row]
        self.loaded += 1
        image = self._load(row)
        small = _small(image) if image is not None else None
        self._pictures[row] = small
        if len(self._pictures) > self.KEPT:
            self._pictures.popitem(last=False)
        return small


def _small(image: Image.Image) -> Image.Image:
    small = image.convert("RGB")
    small.thumbnail((WORKING, WORKING), Image.Resampling.BOX)
    return small


def thumbnail(path: Path | None) -> Image.Image | None:
    """The picture in a thumbnail file; None when there is none or it cannot be read."""
    if path is None:
        return None
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError:
        return None


def compare(a: Look | None, b: Look | None, text_a: str | None, text_b: str | None) -> Content:
    """The content agreement of two pictures from their `Look`s and OCR texts."""
    text = text_agreement(text_a, text_b)
    if a is None or b is None or text == 0 or float(a.quick.astype(np.float32) @ b.quick) < QUICK_FLOOR:
        return Content(0.0, text, (0.0,) * 4, 1.0)
    first, second = a.image(), b.image()
    best, crop = max(_aligned(first, second), _aligned(second, first))
    pixels = float(np.clip((best - PIXEL_FLOOR) / (1 - PIXEL_FLOOR), 0, 1))
    return Content(pixels, text, crop, b.brightness / max(a.brightness, 1e-6))


def text_agreement(a: str | None, b: str | None) -> float | None:
    """How well two OCR texts agree, 0..1; None when neither holds TEXT_WORDS words (or one was
    never read)."""
    if a is None or b is None:
        return None
    first, second = words(a), words(b)
    if max(len(first), len(second)) < TEXT_WORDS:
        return None
    ratio = difflib.SequenceMatcher(None, first, second, autojunk=False).ratio()
    return float(np.clip((ratio - TEXT_FLOOR) / (1 - TEXT_FLOOR), 0, 1))


def text_pairs(texts: list[str | None], rows: np.ndarray, k: int) -> np.ndarray:
    """(m, 2) pairs (a < b) of `rows` whose OCR words are nearly the same set: those that share
    a band of their MinHash signatures (BANDS bands of BAND hashes: word sets that overlap by
    0.95 share one 99 % of the time, by 0.6 7 %); in a band shared by many, each with the `k`
    after it. Texts of fewer than TEXT_WORDS words are left out."""
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for row in rows.tolist():
        found = set(words(texts[row] or ""))
        if len(found) < TEXT_WORDS:
            continue
        hashed = np.array([zlib.crc32(word.encode()) for word in found], dtype=np.uint64)[:, None]
        signature = ((hashed * _SALT_A + _SALT_B) % _PRIME).min(axis=0)
        for band in range(BANDS):
            buckets.setdefault((band, signature[band * BAND:(band + 1) * BAND].tobytes()), []).append(row)
    pairs = {(members[i], other) for members in buckets.values() for i in range(len(members))
             for other in members[i + 1: i + 1 + k]}
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def _aligned(source: Image.Image, target: Image.Image) -> tuple[float, tuple[float, float, float, float]]:
    """The best correlation of `target` with `source` cropped (coordinate search), and that crop."""
    width, height = source.size
    goal = _grid(target, (0, 0, *target.size))

    def correlation(cut: tuple[float, ...]) -> float:
        box = (cut[0] * width, cut[1] * height, width - cut[2] * width, height - cut[3] * height)
        return float(_grid(source, box) @ goal)

    cut: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)
    best = correlation(cut)
    for step in STEPS if best < SURE else ():  # the same picture uncropped: no search
        moved = True
        while moved:
            moved = False
            for side in range(4):
                for change in (step, -step):
                    tried = tuple(min(max(value + change * (at == side), 0.0), MAX_CROP)
                                  for at, value in enumerate(cut))
                    if tried != cut and (score := correlation(tried)) > best + 1e-4:
                        best, cut, moved = score, tried, True
    return best, cut  # type: ignore[return-value]


def _grid(image: Image.Image, box: tuple[float, ...], side: int = SIDE) -> np.ndarray:
    """`box` of `image` at `side` x `side`, each channel less its mean, of unit length."""
    cells = np.asarray(image.resize((side, side), Image.Resampling.BILINEAR, box=box), dtype=np.float32)
    cells = (cells - cells.mean(axis=(0, 1))).ravel()
    return cells / max(float(np.linalg.norm(cells)), 1e-6)
