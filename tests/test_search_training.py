"""The demo-model training: each loss goes down on a few images; a run writes a usable pair."""

from __future__ import annotations

import math
import random
import re

import numpy as np
import pytest
import torch

from demo.data import batch as make_batch
from demo.data import build_pool, hard_negative
from demo.phrases import Phrase, mismatch, phrase_for
from demo.shapes import COLORS, SHAPES, Shape, caption_for, generate
from demo.training import DemoConfig, build, losses, train
from demo.vision_stage import AttributeHeads, pretrain, targets
from search.models import Blip2Engine
from tests.support.engines import FLOAT32

pytestmark = pytest.mark.slow  # training steps of the demo model

SMALL = DemoConfig(image_size=32, vision_hidden=32, vision_layers=1, qformer_hidden=32, qformer_layers=1,
                   queries=4, embed_dim=16, lm_hidden=32, lm_layers=1, pool=48, batch_size=8, warmup=2)


def test_each_loss_goes_down_on_a_few_images():
    ret, gen, ret_proc, gen_proc = build(SMALL)
    pool = build_pool(ret_proc.image_processor, seed=1, count=8, workers=1)
    batch = make_batch(pool, np.arange(8), random.Random(0))
    with torch.no_grad():  # stage 1 trains on a frozen encoder's output
        vision = ret.vision_model(pixel_values=pool.pixels[:8].float()).last_hidden_state
    log_temp = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = {id(p): p for p in [*ret.parameters(), *gen.parameters()] if p.requires_grad}
    optimizer = torch.optim.AdamW([*params.values(), log_temp], lr=1e-2)
    history = []
    for _ in range(150):  # ITC is the slowest: every pair starts at about the same cosine
        parts = losses(ret, gen, ret_proc.tokenizer, gen_proc.tokenizer, batch, vision, log_temp)
        history.append({k: float(v.detach()) for k, v in parts.items()})
        optimizer.zero_grad()
        sum(parts.values()).backward()
        optimizer.step()
    for name in ("itc", "itc_phrases", "itm", "caption", "answer"):
        first = np.mean([h[name] for h in history[:3]])
        last = np.mean([h[name] for h in history[-3:]])
        print(name, round(first, 3), round(last, 3))
        assert last < 0.8 * first, (name, first, last)


def test_hard_negatives_change_exactly_one_thing():
    rng = random.Random(0)
    for sample in generate(seed=3, count=200):
        negative = hard_negative(sample.shapes, sample.background, rng)
        assert negative != sample.caption
        assert negative != caption_for(sample.shapes, sample.background)
        differing = sum(a != b for a, b in zip(negative.split(), sample.caption.split(), strict=False))
        assert 1 <= differing <= 6  # one attribute; swapping the order moves each shape's words


def test_attribute_targets_name_what_each_image_holds():
    ret, _, ret_proc, _ = build(SMALL)
    pool = build_pool(ret_proc.image_processor, seed=2, count=40, workers=1)
    goal = targets(pool, grid=4)
    colors = list(COLORS)
    for i, (shapes, background) in enumerate(zip(pool.shapes, pool.backgrounds, strict=True)):
        kinds = goal.image[i, : len(SHAPES)].nonzero().flatten()
        assert {SHAPES[k] for k in kinds} == {s.kind for s in shapes}
        pairs = goal.image[i, len(SHAPES) : len(SHAPES) * (1 + len(colors))].view(len(colors), len(SHAPES))
        named = {(colors[c], SHAPES[k]) for c, k in pairs.nonzero().tolist()}
        assert named == {(s.color, s.kind) for s in shapes}
        assert colors[int(goal.image[i, len(SHAPES) * (1 + len(colors)) :].argmax())] == background
    assert goal.patches.shape == (40, 16, 1 + len(SHAPES))


def test_stage_zero_learns_the_attributes_of_a_few_images():
    ret, _, ret_proc, _ = build(SMALL)
    pool = build_pool(ret_proc.image_processor, seed=1, count=8, workers=1)
    goal = targets(pool, grid=SMALL.image_size // SMALL.patch)
    history = pretrain(ret.vision_model, AttributeHeads(SMALL.vision_hidden), goal, pool, seconds=0,
                       batch_size=8, lr=1e-2, seed=0, max_steps=150)
    first, last = history[0], history[-1]
    assert last["attributes"] < first["attributes"] / 3 and last["patches"] < first["patches"] / 2


def test_a_short_run_writes_a_pair_the_engine_loads_with_one_encoder(tmp_path):
    report = train(tmp_path / "model", DemoConfig(**{**SMALL.__dict__, "max_steps": 3}))
    assert report["steps"] == 3 and (tmp_path / "model" / "training.json").is_file()
    assert [entry["stage"] for entry in report["history"]] == [0, 1]  # step 1 of each stage is logged
    engine = Blip2Engine.load(str(tmp_path / "model"), device="cpu", precision=FLOAT32)
    assert engine.encoder_mode == "shared"
    images = [s.image for s in generate(seed=5, count=2)]
    assert engine.embed_images(images).shape == (2, SMALL.queries, SMALL.embed_dim)
    assert len(engine.caption(images)) == 2


def test_phrases_fit_the_images_they_name_and_mismatches_do_not():
    rng = random.Random(1)
    samples = list(generate(seed=4, count=300))
    texts = set()
    for sample in samples:
        phrase = phrase_for(sample.shapes, sample.background, rng)
        texts.add(phrase.text)
        assert phrase.fits(sample.shapes, sample.background), phrase
        assert phrase.text in sample.caption or len(phrase.parts) == 1  # both shapes: the caption's words
        wrong = mismatch(phrase, sample.shapes, sample.background, rng)
        assert not wrong.fits(sample.shapes, sample.background), (wrong, sample.caption)
    for text in texts:  # what users type, in the caption grammar
        assert re.fullmatch(r"((an? )?((large|small) )?((\w+) )?(circle|square|triangle|star)( and )?){1,2}"
                            r"( on an? \w+ background)?", text), text


def test_a_phrase_fits_every_image_holding_what_it_names():
    box = (0, 0, 10, 10)
    blue_square_red_circle = [Shape("square", "blue", "small", box), Shape("circle", "red", "large", box)]
    blue_circle_red_square = [Shape("circle", "blue", "small", box), Shape("square", "red", "large", box)]
    red_circle = Phrase(((None, "red", "circle"),))
    assert red_circle.text == "a red circle"
    assert red_circle.fits(blue_square_red_circle, "white")
    assert not red_circle.fits(blue_circle_red_square, "white")
    both = Phrase(((None, "red", "circle"), (None, "blue", "square")), articles=False)
    assert both.text == "red circle and blue square"
    assert not both.fits(blue_square_red_circle, "white")  # left to right, as captions name them
    on_black = Phrase(((None, "red", "circle"),), "black")
    assert on_black.text == "a red circle on a black background"
    assert not on_black.fits(blue_square_red_circle, "white")
