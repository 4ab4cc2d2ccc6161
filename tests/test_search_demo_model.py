"""The shipped demo model, measured on a held-out shapes-world set (a seed never used in
training). The floors are the figures its model card states (search/demo_model/README.md),
rounded down: this model does not reach the targets of the demo-model issue yet (shape is
at chance), and these tests keep a retrained model from silently getting worse."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from search.evaluation import evaluate, load_records
from search.images import open_image
from search.models import Blip2Engine
from search.shapes import COLORS, SHAPES, write_collection

HELD_OUT_SEED = 20261122  # training draws seeds 0..47; the demo command uses 4242
COUNT = 500


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("held_out")
    records = write_collection(folder, seed=HELD_OUT_SEED, count=COUNT)
    return load_records(folder, records)


@pytest.fixture(scope="module")
def engine():
    return Blip2Engine.load("demo", device="cpu")


@pytest.fixture(scope="module")
def report(engine, held_out):
    return evaluate(engine, held_out, rerank_top=0, batch_size=32)


def test_the_demo_model_uses_one_encoder_pass(engine):
    assert engine.encoder_mode == "shared"


def test_text_to_image_recall(report, record_property):
    record_property("t2i", report["t2i"])
    assert report["t2i"]["r1"] >= 0.38 and report["t2i"]["r5"] >= 0.93, report["t2i"]


def test_answers(report, record_property):
    record_property("vqa", report["vqa_by_kind"])
    kinds = report["vqa_by_kind"]
    assert report["vqa_accuracy"] >= 0.66, kinds
    assert kinds["what color background"] >= 0.97 and kinds["how many"] >= 0.92, kinds
    assert kinds["what color"] >= 0.62, kinds


def test_captions(report, record_property):
    record_property("caption", (report["caption_exact_match"], report["caption_bleu4"]))
    assert report["caption_exact_match"] >= 0.06 and report["caption_bleu4"] >= 0.45, report


def test_colour_queries_find_the_named_colour(engine, held_out):
    """`red`, `a blue square`: how often all of the top 5 hold a shape of the named colour."""
    captions = {image: caption for image, caption in held_out.captions}
    images = [open_image(path) for path in held_out.images]
    vectors = np.concatenate([engine.embed_images(images[i : i + 64]) for i in range(0, len(images), 64)])
    exact, coloured, total = 0, 0, 0
    for color, shape in itertools.product(COLORS, SHAPES):
        query = f"{'an' if color[0] in 'aeiou' else 'a'} {color} {shape}"
        holders = {i for i, c in captions.items() if re.search(rf"\b{color} {shape}\b", c)}
        any_shape = rf"\b{color} (circle|square|triangle|star)\b"
        with_colour = {i for i, c in captions.items() if re.search(any_shape, c)}
        if len(holders) < 5:
            continue
        top = np.argsort(-engine.itc(vectors, engine.embed_texts([query]))[:, 0], kind="stable")[:5].tolist()
        exact += all(i in holders for i in top)
        coloured += all(i in with_colour for i in top)
        total += 1
    assert total >= 28
    print(f"top 5 all hold the coloured shape: {exact}/{total}; the colour: {coloured}/{total}")
    assert coloured / total >= 0.40, f"colour right in the top 5 for {coloured}/{total}"
