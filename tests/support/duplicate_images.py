"""A seeded set of duplicates for the duplicate finder: originals from the shapes world, each
with one to three near copies (resized, re-encoded, lightly cropped, brightened or darkened,
or saved in another format), look-alikes (the same shapes in the same colours drawn
elsewhere: the same kind of scene, another picture) and a few byte-identical files.

`write_set(folder, seed, originals)` writes the files and returns a `DuplicateSet` that
knows which files show the same picture.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance

from demo.shapes import SUPERSAMPLE, Shape, _draw, _place, render

CALIBRATION_SEED, TEST_SEED = 1, 2  # the default threshold was chosen on the first (docs/duplicates.md)
MIN_MOVE = 0.25  # a look-alike's shapes move, on average, at least this share of the side


@dataclass
class DuplicateSet:
    """Every written file by path; `picture[path]`: which picture it shows (an original, its
    copies and identical files share one); `lookalike[path]`: the original it imitates."""

    picture: dict[str, int] = field(default_factory=dict)
    lookalike: dict[str, str] = field(default_factory=dict)
    identical: list[tuple[str, str]] = field(default_factory=list)  # (the file, its byte copy)
    originals: dict[int, str] = field(default_factory=dict)  # picture -> the original's path

    def pairs(self) -> set[frozenset[str]]:
        """Every pair of files that show the same picture."""
        groups: dict[int, list[str]] = {}
        for path, picture in self.picture.items():
            groups.setdefault(picture, []).append(path)
        return {frozenset(pair) for paths in groups.values() for pair in combinations(paths, 2)}


def write_set(folder: Path, seed: int, originals: int = 40, identical: int = 4) -> DuplicateSet:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    result = DuplicateSet()
    for i in range(originals):
        sample = render(rng, soft=True)
        sides = sample.image.size[0]
        fills = _fills(sample.image, sample.shapes, sample.background)
        original = _save(folder / f"p{i:03d}", sample.image, rng.choice(("PNG", "JPEG")), rng)
        result.picture[str(original)], result.originals[i] = i, str(original)
        for j in range(rng.randint(1, 3)):
            copy = _save(folder / f"p{i:03d}_copy{j}", _altered(sample.image, rng),
                         rng.choice(("PNG", "JPEG", "WEBP")), rng)
            result.picture[str(copy)] = i
        other = _elsewhere(sample.shapes, sides, rng)
        lookalike = _save(folder / f"p{i:03d}_lookalike", _drawn(other, sides, fills), "PNG", rng)
        result.picture[str(lookalike)] = originals + i  # a picture of its own
        result.lookalike[str(lookalike)] = str(original)
    for i in rng.sample(range(originals), identical):
        source = Path(result.originals[i])
        twin = folder / f"p{i:03d}_same{source.suffix}"
        twin.write_bytes(source.read_bytes())
        result.picture[str(twin)] = i
        result.identical.append((str(source), str(twin)))
    return result


def _altered(image: Image.Image, rng: random.Random) -> Image.Image:
    """One to three of: resized to 50-90 %, cropped 2-5 % on each side, 15 % brighter or darker."""
    steps = rng.sample(("resize", "crop", "light"), rng.randint(1, 3))
    for step in steps:
        width, height = image.size
        if step == "resize":
            scale = rng.uniform(0.5, 0.9)
            image = image.resize((max(16, round(width * scale)), max(16, round(height * scale))),
                                 Image.Resampling.LANCZOS)
        elif step == "crop":
            cut = [round(side * rng.uniform(0.02, 0.05)) for side in (width, height, width, height)]
            image = image.crop((cut[0], cut[1], width - cut[2], height - cut[3]))
        else:
            image = ImageEnhance.Brightness(image).enhance(rng.choice((0.85, 1.15)))
    return image


def _save(stem: Path, image: Image.Image, kind: str, rng: random.Random) -> Path:
    path = stem.with_suffix({"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}[kind])
    buffer = io.BytesIO()
    options = {"quality": rng.randint(60, 90)} if kind in ("JPEG", "WEBP") else {}
    image.save(buffer, format=kind, **options)
    path.write_bytes(buffer.getvalue())
    return path


def _fills(image: Image.Image, shapes: list[Shape], background: str) -> list[tuple[int, ...]]:
    """The colours actually drawn (jitter included): the background's, then each shape's, read
    at the middle of its box (inside every kind of shape)."""
    last = image.size[0] - 1
    corner = next((image.getpixel(xy) for xy in ((0, 0), (last, last), (0, last), (last, 0))
                   if not _covers(shapes, *xy)), image.getpixel((0, 0)))
    inside = [image.getpixel((round((x0 + x1) / 2), round(y0 + (y1 - y0) * 0.6))) for x0, y0, x1, y1 in
              (s.box for s in shapes)]
    return [corner, *inside]


def _covers(shapes: list[Shape], x: int, y: int) -> bool:
    return any(s.box[0] <= x < s.box[2] and s.box[1] <= y < s.box[3] for s in shapes)


def _elsewhere(shapes: list[Shape], side: int, rng: random.Random) -> list[Shape]:
    """The same shapes (kind, colour, size) at other places: moved on average by at least
    MIN_MOVE of the side."""
    kinds, colors = [s.kind for s in shapes], [s.color for s in shapes]
    for _ in range(200):
        placed = sorted(_place(rng, side, kinds, colors), key=lambda p: kinds.index(p.kind))
        placed = [Shape(p.kind, p.color, s.size, _moved(s.box, p.box, side))
                  for s, p in zip(shapes, placed, strict=True)]
        moves = [abs(a.centre[0] - b.centre[0]) + abs(a.centre[1] - b.centre[1])
                 for a, b in zip(shapes, placed, strict=True)]
        if sum(moves) / len(moves) >= MIN_MOVE * side and not _overlap(placed):
            return placed
    raise RuntimeError("no room to move these shapes")  # does not happen at these sizes


def _moved(old: tuple[int, ...], new: tuple[int, ...], side: int) -> tuple[int, int, int, int]:
    """`old`'s extent at `new`'s top-left corner, kept inside the picture."""
    extent = old[2] - old[0]
    x0, y0 = min(new[0], side - extent), min(new[1], side - extent)
    return x0, y0, x0 + extent, y0 + extent


def _overlap(shapes: list[Shape]) -> bool:
    if len(shapes) < 2:
        return False
    a, b = (s.box for s in shapes)
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def _drawn(shapes: list[Shape], side: int, fills: list[tuple[int, ...]]) -> Image.Image:
    scale = SUPERSAMPLE
    image = Image.new("RGB", (side * scale, side * scale), fills[0])
    draw = ImageDraw.Draw(image)
    for shape, fill in zip(shapes, fills[1:], strict=True):
        _draw(draw, shape, fill, scale)
    return image.resize((side, side), Image.Resampling.LANCZOS)


@dataclass(frozen=True)
class Score:
    right: int  # pairs that share a group and show one picture
    grouped: int  # pairs that share a group
    true: int  # pairs that show one picture
    lookalikes_joined: int  # look-alikes in a group with the original they imitate

    @property
    def precision(self) -> float:  # of the pairs that share a group, the share that show one picture
        return self.right / self.grouped if self.grouped else 1.0

    @property
    def recall(self) -> float:  # of the pairs that show one picture, the share that share a group
        return self.right / self.true

    def __str__(self) -> str:
        return (f"precision {self.precision:.3f} ({self.right}/{self.grouped}), recall {self.recall:.3f} "
                f"({self.right}/{self.true}), look-alikes joined {self.lookalikes_joined}")


def score(made: DuplicateSet, groups: list[list[str]]) -> Score:
    """How well `groups` (each a list of paths) find the set's pairs."""
    found = {frozenset(pair) for paths in groups for pair in combinations(paths, 2)}
    truth = made.pairs()
    right = len(found & truth)
    joined = sum(frozenset((copy, original)) in found for copy, original in made.lookalike.items())
    return Score(right, len(found), len(truth), joined)


def calibrate(seed: int, originals: int, thresholds: list[float], write=None, judge=None) -> list[tuple]:
    """The set `write(folder, seed, originals)` makes (`write_set` by default) indexed with the
    demo model, OCR on, scored at each threshold (the tables in the docs came from `python -m
    tests.support.duplicate_images SEED ORIGINALS` and `python -m tests.support.mixed_duplicates`);
    `judge(made, groups)` scores (`score` by default)."""
    import tempfile

    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection
    from search.models import Blip2Engine
    from search.query.duplicates import groups
    from tests.support.engines import FLOAT32

    with tempfile.TemporaryDirectory() as scratch:
        made = (write or write_set)(Path(scratch) / "photos", seed, originals)
        collection = Collection.open(Path(scratch) / "index", create=True)
        try:
            engine = Blip2Engine.load("demo", device="cpu", precision=FLOAT32)
            options = IndexOptions(workers=0, captions=False)
            index_paths(collection, engine, [Path(scratch) / "photos"], options)
            found = {t: [[i.path for i in g.images] for g in groups(collection, t).groups]
                     for t in thresholds}
            return [(t, (judge or score)(made, paths)) for t, paths in found.items()]
        finally:
            collection.close()


THRESHOLDS = [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7]

if __name__ == "__main__":
    import sys

    seed, count = (int(arg) for arg in sys.argv[1:3])
    for threshold, got in calibrate(seed, count, THRESHOLDS):
        print(f"seed {seed}, {count} originals, threshold {threshold:.2f}: {got}")  # noqa: T201
