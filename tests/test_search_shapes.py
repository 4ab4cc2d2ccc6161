"""The shapes-world generator follows the specification, and is a function of its seed."""

from __future__ import annotations

import io
import json
import random
import re

import numpy as np
import pytest
from PIL import Image

from demo.shapes import (
    COLORS,
    JITTER,
    SHAPES,
    SIZES,
    caption_for,
    coverage,
    generate,
    render,
    write_collection,
)

CAPTION_ONE = re.compile(r"^an? (large|small) (\w+) (circle|square|triangle|star) on an? (\w+) background$")
KIND = "(circle|square|triangle|star)"
CAPTION_TWO = re.compile(rf"^an? (\w+) {KIND} and an? (\w+) {KIND} on an? (\w+) background$")


@pytest.fixture(scope="module")
def samples():
    return list(generate(seed=5, count=300))


def test_same_seed_same_samples():
    a = [s.encode() for s in generate(seed=9, count=5)]
    b = [s.encode() for s in generate(seed=9, count=5)]
    c = [s.encode() for s in generate(seed=10, count=5)]
    assert a == b and a != c


def test_the_whole_specification_is_covered(samples):
    assert {s.kind for x in samples for s in x.shapes} == set(SHAPES)
    assert {s.color for x in samples for s in x.shapes} == set(COLORS)
    assert {x.background for x in samples} == set(COLORS)
    assert {s.size for x in samples for s in x.shapes} == set(SIZES)
    assert {len(x.shapes) for x in samples} == {1, 2}
    assert {x.format for x in samples} == {"PNG", "JPEG"}
    sides = [x.image.width for x in samples]
    assert min(sides) >= 64 and max(sides) <= 256 and max(sides) - min(sides) > 150
    assert all(x.image.width == x.image.height for x in samples)
    assert all(x.quality is None or 70 <= x.quality <= 95 for x in samples)


def test_geometry(samples):
    for sample in samples:
        side = sample.image.width
        for shape in sample.shapes:
            x0, y0, x1, y1 = shape.box
            assert 0 <= x0 < x1 <= side and 0 <= y0 < y1 <= side
            low, high = SIZES[shape.size]
            assert low * side - 1 <= x1 - x0 <= high * side + 1
        if len(sample.shapes) == 2:
            a, b = (s.box for s in sample.shapes)
            assert a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1]  # no overlap
            assert sample.shapes[0].centre[0] <= sample.shapes[1].centre[0]  # left one first
        assert sample.background not in {s.color for s in sample.shapes}


def _near(pixel, colour, slack=JITTER + 6) -> bool:
    return bool(np.abs(np.asarray(pixel, dtype=int) - np.array(colour)).max() <= slack)


def test_pixels_have_the_named_colours(samples):
    for sample in samples:
        decoded = np.asarray(Image.open(io.BytesIO(sample.encode())).convert("RGB"))
        slack = JITTER + (12 if sample.format == "JPEG" else 2)
        assert _near(decoded[0, 0], COLORS[sample.background], slack) or any(
            s.box[0] == 0 and s.box[1] == 0 for s in sample.shapes)
        for shape in sample.shapes:
            x0, y0, x1, y1 = shape.box
            if x1 - x0 < 16:
                continue  # too small to sample reliably after JPEG
            # the box centre is inside every shape kind (the star's and triangle's too)
            cx, cy = (x0 + x1) // 2, y0 + (y1 - y0) * 11 // 20
            assert _near(decoded[cy, cx], COLORS[shape.color], slack), (sample.caption, shape)


def test_shapes_are_told_apart_by_their_pixels():
    """Fill fraction of the box: square ~1, circle ~0.79, triangle ~0.5, star ~0.35-0.45."""
    fills = {kind: [] for kind in SHAPES}
    rng = random.Random(3)
    for kind in SHAPES:
        for _ in range(5):
            while True:
                sample = render(rng, side=200, count=1, soft=False)
                if sample.shapes[0].kind == kind and sample.shapes[0].size == "large":
                    break
            shape = sample.shapes[0]
            pixels = np.asarray(sample.image)[shape.box[1]:shape.box[3], shape.box[0]:shape.box[2]]
            mask = np.abs(pixels.astype(int) - np.array(COLORS[shape.color])).max(axis=-1) <= JITTER + 1
            fills[kind].append(mask.mean())
    assert min(fills["square"]) > 0.97
    assert 0.74 < min(fills["circle"]) and max(fills["circle"]) < 0.82
    assert 0.45 < min(fills["triangle"]) and max(fills["triangle"]) < 0.55
    assert 0.25 < min(fills["star"]) and max(fills["star"]) < 0.45


def test_captions_follow_the_grammar(samples):
    for sample in samples:
        caption = sample.caption
        if len(sample.shapes) == 1:
            size, colour, kind, background = CAPTION_ONE.match(caption).groups()
            shape = sample.shapes[0]
            expected = (shape.size, shape.color, shape.kind, sample.background)
            assert (size, colour, kind, background) == expected
        else:
            c1, k1, c2, k2, background = CAPTION_TWO.match(caption).groups()
            assert [(c1, k1), (c2, k2)] == [(s.color, s.kind) for s in sample.shapes]
        for word in ("orange",):
            assert f"a {word}" not in caption
    assert any("an orange" in s.caption for s in samples)


def test_questions_have_the_right_answers(samples):
    kinds = set()
    for sample in samples:
        truth = {(s.color, s.kind) for s in sample.shapes}
        for question, answer in sample.qa:
            if m := re.fullmatch(r"what color is the (\w+)\?", question):
                kinds.add("color")
                if m.group(1) == "background":
                    assert answer == sample.background
                else:
                    assert (answer, m.group(1)) in truth
            elif m := re.fullmatch(r"what shape is (\w+)\?", question):
                kinds.add("shape")
                assert (m.group(1), answer) in truth
            elif question == "how many shapes are there?":
                kinds.add("count")
                assert answer == ["one", "two"][len(sample.shapes) - 1]
            elif m := re.fullmatch(r"is there an? (\w+) (\w+)\?", question):
                kinds.add("pair")
                assert answer == ("yes" if (m.group(1), m.group(2)) in truth else "no")
            elif m := re.fullmatch(r"is there a (\w+)\?", question):
                kinds.add("kind")
                assert answer == ("yes" if m.group(1) in {k for _, k in truth} else "no")
            else:
                raise AssertionError(question)
    assert kinds == {"color", "shape", "count", "pair", "kind"}
    answers = [a for s in samples for _, a in s.qa]
    assert 0.3 < answers.count("yes") / (answers.count("yes") + answers.count("no")) < 0.7


def test_caption_for_uses_an_before_vowels():
    from demo.shapes import Shape

    one = [Shape("circle", "orange", "large", (0, 0, 10, 10))]
    assert caption_for(one, "black") == "a large orange circle on a black background"
    two = [Shape("circle", "orange", "small", (0, 0, 5, 5)), Shape("star", "red", "large", (6, 6, 9, 9))]
    assert caption_for(two, "white") == "an orange circle and a red star on a white background"


def test_write_collection(tmp_path):
    records_path = write_collection(tmp_path / "set", seed=4, count=6)
    records = [json.loads(line) for line in records_path.read_text().splitlines()]
    images = {r["image"] for r in records}
    assert len(images) == 6 and all((tmp_path / "set" / name).is_file() for name in images)
    assert sum("caption" in r for r in records) == 6
    assert sum("question" in r for r in records) == 36


def test_coverage_maps_each_shape_onto_the_patch_grid(samples):
    for sample in samples[:60]:
        grid = 12
        cover = coverage(sample.shapes, sample.image.width, grid)
        assert cover.shape == (grid, grid, 1 + len(SHAPES))
        np.testing.assert_allclose(cover.sum(axis=-1), 1.0)
        for shape in sample.shapes:
            x, y = (int(v * grid / sample.image.width) for v in shape.centre)
            kind = 1 + SHAPES.index(shape.kind)
            assert cover[y, x, kind] > 0  # the centre of every kind lies inside it
            covered = cover[..., kind].sum() / grid**2  # its share of the image
            side = (shape.box[2] - shape.box[0]) / sample.image.width
            assert 0.25 * side**2 < covered <= side**2 + 0.05  # a star fills a third of its box
        absent = [1 + SHAPES.index(k) for k in SHAPES if k not in {s.kind for s in sample.shapes}]
        assert cover[..., absent].sum() == 0
