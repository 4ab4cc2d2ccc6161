"""The shipped demo model, measured on a held-out shapes-world set (a seed never used in
training), against the targets of the demo-model issue: text->image R@1 >= 0.90, VQA >= 0.85
and >= 0.80 on shape questions, caption exact match >= 0.60, and attribute queries (`a red
circle`) whose top 5 all hold the named coloured shape in >= 90 % of cases."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from demo.shapes import COLORS, SHAPES, write_collection
from search.media.images import open_image
from search.models import Blip2Engine
from search.models.evaluation import evaluate, load_records
from tests.support import other_renderer
from tests.support.engines import FLOAT32

pytestmark = pytest.mark.slow  # the demo model evaluated on hundreds of held-out images

HELD_OUT_SEED = 20261122  # training draws seeds 0..47; the demo command uses 4242
COUNT = 500
TEXTS = 440  # the distinct captions of those 500 images: the text->image queries


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("held_out")
    records = write_collection(folder, seed=HELD_OUT_SEED, count=COUNT)
    return load_records(folder, records)


@pytest.fixture(scope="module")
def engine():
    return Blip2Engine.load("demo", device="cpu", precision=FLOAT32)


@pytest.fixture(scope="module")
def held_out_vectors(engine, held_out):
    images = [open_image(path) for path in held_out.images]
    return np.concatenate([engine.embed_images(images[i : i + 64]) for i in range(0, len(images), 64)])


@pytest.fixture(scope="module")
def report(engine, held_out):
    return evaluate(engine, held_out, rerank_top=0, batch_size=32)


@pytest.fixture(scope="module")
def other_report(engine, tmp_path_factory):
    """The same measures on images from a renderer that shares no drawing code with ours."""
    folder = tmp_path_factory.mktemp("other_renderer")
    records = other_renderer.write_collection(folder, seed=HELD_OUT_SEED, count=COUNT)
    return evaluate(engine, load_records(folder, records), rerank_top=0, batch_size=32)


def test_the_demo_model_uses_one_encoder_pass(engine):
    assert engine.encoder_mode == "shared"


def test_text_to_image_recall(report, held_out, record_property):
    record_property("t2i", report["t2i"])
    print(f"text->image over {report['images']} images: {report['t2i']}")
    # observed: R@1 417 of the 440 caption texts (0.948), R@5 all (targets: 0.90, 0.99)
    assert len({caption for _, caption in held_out.captions}) == TEXTS
    r1, r5 = report["t2i"]["r1"], report["t2i"]["r5"]
    assert r1 >= (417 - 2) / TEXTS and r5 >= (TEXTS - 1) / TEXTS, report["t2i"]


def test_answers(report, record_property):
    record_property("vqa", report["vqa_by_kind"])
    kinds = report["vqa_by_kind"]
    print(f"VQA {report['vqa_accuracy']} over {report['questions']} questions: {kinds}")
    # observed: 2,901 of 3,000 right (0.967; the target 0.85), shape questions 0.998 (0.80)
    assert report["questions"] == 3000 and report["vqa_accuracy"] >= (2901 - 2) / 3000, kinds
    observed = {"how many": 0.998, "is there": 0.903, "what color": 1.0, "what color background": 1.0,
                "what shape": 0.998}  # each kind some 600 questions: 0.005 is three of them
    assert all(kinds[kind] >= value - 0.005 for kind, value in observed.items()), kinds


def test_captions(report, record_property):
    record_property("caption", (report["caption_exact_match"], report["caption_bleu4"]))
    print(f"captions: exact {report['caption_exact_match']}, BLEU-4 {report['caption_bleu4']}")
    # observed: 361 of 500 exact (0.722; the target 0.60), BLEU-4 0.854 (0.75)
    assert report["caption_exact_match"] >= (361 - 2) / COUNT and report["caption_bleu4"] >= 0.85, report


@pytest.mark.parametrize("article", [True, False])
def test_attribute_queries_find_the_named_coloured_shape(engine, held_out, held_out_vectors, article):
    """`a red circle`, `blue square`: how often all of the top 5 hold that coloured shape: for
    32 of the 32 pairs the set holds five of (the target: 90 %), give or take one."""
    captions = {image: caption for image, caption in held_out.captions}
    exact, coloured, total = 0, 0, 0
    for color, shape in itertools.product(COLORS, SHAPES):
        query = f"{'an' if color[0] in 'aeiou' else 'a'} {color} {shape}" if article else f"{color} {shape}"
        holders = {i for i, c in captions.items() if re.search(rf"\b{color} {shape}\b", c)}
        any_shape = rf"\b{color} (circle|square|triangle|star)\b"
        with_colour = {i for i, c in captions.items() if re.search(any_shape, c)}
        if len(holders) < 5:
            continue
        scores = engine.itc(held_out_vectors, engine.embed_texts([query]))[:, 0]
        top = np.argsort(-scores, kind="stable")[:5].tolist()
        exact += all(i in holders for i in top)
        coloured += all(i in with_colour for i in top)
        total += 1
    print(f"top 5 all hold the coloured shape: {exact}/{total}; the colour: {coloured}/{total}")
    assert total == 32 and exact >= 32 - 1 and coloured >= 32 - 1, (exact, coloured, total)


def test_another_renderer_s_images_do_as_well(report, other_report, record_property):
    def figures(r):
        return {"t2i r1": r["t2i"]["r1"], "vqa": r["vqa_accuracy"], "shape": r["vqa_by_kind"]["what shape"],
                "caption exact": r["caption_exact_match"]}

    ours, theirs = figures(report), figures(other_report)
    record_property("other renderer", theirs)
    print(f"ours {ours}; the other renderer's {theirs}")
    # observed: R@1 0.956, VQA 0.972, shape 0.996, caption exact 0.770, against ours 0.948,
    # 0.967, 0.998, 0.722: as well, within two items of ours or better
    observed = {"t2i r1": 0.956, "vqa": 0.972, "shape": 0.996, "caption exact": 0.770}
    assert all(theirs[name] >= value - 0.005 for name, value in observed.items()), theirs
    assert all(theirs[name] >= ours[name] - 0.005 for name in ours), (ours, theirs)
