"""bfloat16 and int8 run on CPU and agree with float32: vector cosine >= 0.99."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search.models import Blip2Engine

from .test_search_parity import TEXTS


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.reshape(-1, a.shape[-1])
    b = b.reshape(-1, b.shape[-1])
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return float(cos.min())


@pytest.mark.parametrize("dtype", ["bfloat16", "int8"])
def test_low_precision_agrees_with_float32(dtype, tiny_dirs, engines, images, record_property):
    reference = engines["opt"]
    engine = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", dtype=dtype)
    image_cos = _min_cosine(engine.embed_images(images), reference.embed_images(images))
    text_cos = _min_cosine(engine.embed_texts(TEXTS), reference.embed_texts(TEXTS))
    record_property(f"{dtype}_image_vector_min_cosine", image_cos)
    record_property(f"{dtype}_text_vector_min_cosine", text_cos)
    print(f"{dtype}: min cosine to float32, image vectors {image_cos:.5f}, text vectors {text_cos:.5f}")
    assert image_cos >= 0.99
    assert text_cos >= 0.99
    captions = engine.caption(images[:2])
    assert all(isinstance(c, str) and c for c in captions)
    match = engine.itm(images[:2], "a red circle")
    assert np.all((match >= 0) & (match <= 1))
    assert engine.encoder_mode == "shared"


def test_int8_quantizes_linear_layers(tiny_dirs):
    engine = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", dtype="int8")
    modules = [m for model in engine.models for m in model.modules()]
    assert not any(isinstance(m, torch.nn.Linear) for m in modules)
    quantized = [m for m in modules if type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")]
    assert len(quantized) > 20
