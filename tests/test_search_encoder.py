"""One encoder pass per image when the checkpoints share their encoder; two otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from search.models import Blip2Engine, Question
from tests.support.engines import FLOAT32


@pytest.fixture(scope="module")
def two_pass(tiny_dirs) -> Blip2Engine:
    """The same checkpoints as engines["opt"], with sharing turned off."""
    return Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=FLOAT32, share_encoder=False)


def test_modes_follow_the_weights(engines, two_pass):
    assert engines["opt"].encoder_mode == "shared"
    assert engines["t5"].encoder_mode == "shared"
    assert engines["distinct"].encoder_mode == "separate"  # hashes differ, so no sharing
    assert two_pass.encoder_mode == "separate"


def test_shared_path_equals_two_pass_path(engines, two_pass, images):
    shared = engines["opt"]
    np.testing.assert_allclose(shared.embed_images(images), two_pass.embed_images(images), atol=1e-6)
    assert shared.caption(images) == two_pass.caption(images)
    questions = [Question(image, "what color is the circle?") for image in images]
    assert shared.ask_batch(questions) == two_pass.ask_batch(questions)
    np.testing.assert_allclose(shared.itm(images, "a red circle"), two_pass.itm(images, "a red circle"),
                               atol=1e-6)


@pytest.mark.parametrize(("name", "passes_per_image"), [("opt", 1), ("distinct", 2)])
def test_encoder_passes_per_image(name, passes_per_image, engines, images):
    engine = engines[name]
    before = engine.encoder_passes
    batch = engine.encode(images)
    vectors = engine.embed_images(batch)
    captions = engine.caption(batch)
    assert vectors.shape == (len(images), engine.query_tokens, engine.dim)
    assert len(captions) == len(images)
    assert engine.encoder_passes - before == passes_per_image * len(images)


def test_two_pass_counter_with_the_same_weights(two_pass, images):
    before = two_pass.encoder_passes
    batch = two_pass.encode(images)
    two_pass.embed_images(batch)
    two_pass.caption(batch)
    assert two_pass.encoder_passes - before == 2 * len(images)


def test_distinct_encoders_give_different_vectors_than_shared(engines, images):
    # The "distinct" pair has the same retrieval weights as "opt" (same seed) but another
    # generation encoder: retrieval vectors agree, captions come from a different encoder.
    np.testing.assert_allclose(engines["opt"].embed_images(images), engines["distinct"].embed_images(images),
                               atol=1e-6)
    assert engines["opt"].caption(images) != engines["distinct"].caption(images)
