"""The engine equals plain transformers, at float32 within 1e-5.

References come from freshly loaded HF models and processors, independent of the engine's
own loading and wiring. They run on the tiny checkpoints, and on the real presets under
`pytest -m real` when those are in the local Hugging Face cache.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from transformers import Blip2ForConditionalGeneration, Blip2ForImageTextRetrieval, Blip2Processor

from search.config import Precision
from search.media.images import to_rgb
from search.models import Blip2Engine, Question
from search.models.generation import ANSWER, CAPTION, decoding_kwargs
from search.models.prompts import vqa_prompt
from tests.support.engines import FLOAT32
from tests.support.prompts import QUESTIONS, TEXTS


def _load(cls, location, engine):
    dtype = engine.parts.source.float_dtype
    model = cls.from_pretrained(location, dtype=dtype).to(engine.device).eval()
    return model, Blip2Processor.from_pretrained(location)


@torch.no_grad()
def test_itc_equals_hand_written_reference(pair, images):
    model, processor = _load(Blip2ForImageTextRetrieval, pair.retrieval, pair.engine)
    rgb = [to_rgb(image) for image in images]
    pixels = processor.image_processor(rgb, return_tensors="pt")["pixel_values"]
    vision = model.vision_model(pixel_values=pixels.to(model.device, model.dtype)).last_hidden_state
    ones = torch.ones(vision.shape[:-1], dtype=torch.long, device=model.device)
    queries = model.qformer(
        query_embeds=model.query_tokens.expand(len(rgb), -1, -1),
        encoder_hidden_states=vision, encoder_attention_mask=ones,
    ).last_hidden_state
    image_vecs = F.normalize(model.vision_projection(queries.to(model.dtype)), dim=-1).float().cpu()
    tokens = processor.tokenizer(TEXTS, padding=True, return_tensors="pt").to(model.device)
    text_out = model.qformer(
        query_embeds=model.embeddings(input_ids=tokens["input_ids"]),
        query_length=0, attention_mask=tokens["attention_mask"],
    ).last_hidden_state
    text_vecs = F.normalize(model.text_projection(text_out[:, 0].to(model.dtype)), dim=-1).float().cpu()
    reference = np.array([
        [float((image_vecs[i] @ text_vecs[t]).max()) for t in range(len(TEXTS))] for i in range(len(rgb))
    ])

    engine = pair.engine
    vecs = engine.embed_images(images)
    np.testing.assert_allclose(vecs, image_vecs.numpy(), atol=pair.atol)
    np.testing.assert_allclose(engine.embed_texts(TEXTS), text_vecs.numpy(), atol=pair.atol)
    np.testing.assert_allclose(engine.itc(vecs, engine.embed_texts(TEXTS)), reference, atol=pair.atol)
    assert np.ptp(reference) > 1e-3  # the scores differ, so the comparison means something


@torch.no_grad()
def test_itc_equals_transformers_forward(pair, images):
    model, processor = _load(Blip2ForImageTextRetrieval, pair.retrieval, pair.engine)
    rgb = [to_rgb(image) for image in images]
    inputs = processor(images=rgb, text=TEXTS, padding=True, return_tensors="pt").to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    expected = model(**inputs, use_image_text_matching_head=False).logits_per_image.float().cpu().numpy()
    engine = pair.engine
    got = engine.itc(engine.embed_images(images), engine.embed_texts(TEXTS))
    np.testing.assert_allclose(got, expected, atol=pair.atol)


@torch.no_grad()
def test_itm_equals_transformers_softmax(pair, images):
    model, processor = _load(Blip2ForImageTextRetrieval, pair.retrieval, pair.engine)
    rgb = [to_rgb(image) for image in images]
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(rgb))]
    inputs = processor(images=rgb, text=texts, padding=True, return_tensors="pt").to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    logits = model(**inputs, use_image_text_matching_head=True).logits_per_image
    expected = logits.float().softmax(dim=-1)[:, 1].cpu().numpy()
    got = pair.engine.itm(images, texts)
    np.testing.assert_allclose(got, expected, atol=pair.atol)


def _hf_generate(pair, images, prompts, decoding) -> list[str]:
    model, processor = _load(Blip2ForConditionalGeneration, pair.generation, pair.engine)
    decoder_only = not model.config.text_config.is_encoder_decoder
    rgb = [to_rgb(image) for image in images]
    inputs = processor(images=rgb, text=prompts, padding=True, return_tensors="pt",
                       padding_side="left" if decoder_only else "right").to(model.device)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.no_grad():
        out = model.generate(**inputs, **decoding_kwargs(decoding))
    new = out[:, inputs["input_ids"].shape[1]:] if decoder_only else out
    return [text.strip() for text in processor.tokenizer.batch_decode(new, skip_special_tokens=True)]


def test_captions_equal_transformers_generate(pair, images):
    expected = _hf_generate(pair, images, [""] * len(images), CAPTION)
    got = pair.engine.caption(images)
    assert got == expected
    if pair.tiny:
        assert len(set(got)) > 1, "captions should depend on the image"


def test_captions_with_prompt_cut_the_prompt(pair, images):
    expected = _hf_generate(pair, images[:3], ["a picture of"] * 3, CAPTION)
    assert pair.engine.caption(images[:3], prompt="a picture of") == expected


def test_answers_equal_transformers_generate(pair, images):
    prompts = [vqa_prompt(q) for q in QUESTIONS]
    expected = _hf_generate(pair, images, prompts, ANSWER)
    got = pair.engine.ask_batch([Question(img, q) for img, q in zip(images, QUESTIONS, strict=True)])
    assert got == expected


@pytest.mark.parametrize("turns", [0, 2])
def test_chat_prompt_format(turns):
    from search.models.prompts import Turn

    history = [Turn("what color is the circle?", "red"), Turn("is there a star?", "no")][:turns]
    prompt = vqa_prompt("how many shapes are there?", history)
    expected = "".join(f"Question: {t.question} Answer: {t.answer}. " for t in history)
    assert prompt == expected + "Question: how many shapes are there? Answer:"


def test_bfloat16_text_queries_agree_with_float32(tiny_dirs, engines):
    """bfloat16 text queries (the CPU default where it has bfloat16 matmuls) keep float32's vectors."""
    fast = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=replace(FLOAT32, query="bfloat16"))
    exact = engines["opt"]
    assert next(iter(fast.parts["text"].qformer.parameters())).dtype == torch.bfloat16
    assert next(iter(exact.parts["text"].qformer.parameters())).dtype == torch.float32
    cosine = np.sum(fast.embed_texts(TEXTS) * exact.embed_texts(TEXTS), axis=1)  # both unit length
    assert cosine.min() >= 0.99, cosine


@pytest.mark.parametrize("flags", [set(), {"avx512_bf16"}, {"amx_bf16"}])
def test_auto_text_queries_are_bfloat16_only_with_bfloat16_matmuls(monkeypatch, flags):
    from search.models import precision, reading

    monkeypatch.setattr(precision, "cpu_flags", lambda: flags | {"avx2", "fma"})
    got = reading.query_precision(Precision(), precision.Plan("float32"), torch.device("cpu"))
    assert got == (torch.bfloat16 if flags else None)
    assert reading.query_precision(Precision(query="bfloat16"), precision.Plan("float32"),
                                   torch.device("cpu")) == torch.bfloat16
