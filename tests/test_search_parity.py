"""The engine equals plain transformers on the tiny checkpoints, at float32.

References are computed from freshly loaded HF models and processors, independently of the
engine's own loading and wiring.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F
from transformers import Blip2ForConditionalGeneration, Blip2ForImageTextRetrieval, Blip2Processor

from search.images import to_rgb
from search.models import Question
from search.models.generation import ANSWER, CAPTION, decoding_kwargs
from search.prompts import vqa_prompt

TEXTS = ["a red circle", "a small blue square on a white background", "star", "two shapes"]
QUESTIONS = ["what color is the circle?", "how many shapes are there?", "is there a star?",
             "what shape is red?", "what color is the background?", "is there a blue square?",
             "what color is the star?", "how many?"]


def _retrieval(path):
    model = Blip2ForImageTextRetrieval.from_pretrained(path / "retrieval").eval()
    return model, Blip2Processor.from_pretrained(path / "retrieval")


def _generation(path):
    model = Blip2ForConditionalGeneration.from_pretrained(path / "generation").eval()
    return model, Blip2Processor.from_pretrained(path / "generation")


@torch.no_grad()
def test_itc_equals_hand_written_reference(tiny_dirs, engines, images):
    model, processor = _retrieval(tiny_dirs["opt"])
    rgb = [to_rgb(image) for image in images]
    pixels = processor.image_processor(rgb, return_tensors="pt")["pixel_values"]
    vision = model.vision_model(pixel_values=pixels).last_hidden_state
    ones = torch.ones(vision.shape[:-1], dtype=torch.long)
    queries = model.qformer(
        query_embeds=model.query_tokens.expand(len(rgb), -1, -1),
        encoder_hidden_states=vision, encoder_attention_mask=ones,
    ).last_hidden_state
    image_vecs = F.normalize(model.vision_projection(queries), dim=-1)  # (B, Q, D)
    tokens = processor.tokenizer(TEXTS, padding=True, return_tensors="pt")
    text_out = model.qformer(
        query_embeds=model.embeddings(input_ids=tokens["input_ids"]),
        query_length=0, attention_mask=tokens["attention_mask"],
    ).last_hidden_state
    text_vecs = F.normalize(model.text_projection(text_out[:, 0]), dim=-1)  # (T, D)
    reference = np.array([
        [float((image_vecs[i] @ text_vecs[t]).max()) for t in range(len(TEXTS))] for i in range(len(rgb))
    ])

    engine = engines["opt"]
    vecs = engine.embed_images(images)
    np.testing.assert_allclose(vecs, image_vecs.numpy(), atol=1e-5)
    np.testing.assert_allclose(engine.embed_texts(TEXTS), text_vecs.numpy(), atol=1e-5)
    np.testing.assert_allclose(engine.itc(vecs, engine.embed_texts(TEXTS)), reference, atol=1e-5)
    assert np.ptp(reference) > 1e-3  # the scores differ, so the comparison means something


@torch.no_grad()
def test_itc_equals_transformers_forward(tiny_dirs, engines, images):
    model, processor = _retrieval(tiny_dirs["opt"])
    rgb = [to_rgb(image) for image in images]
    inputs = processor(images=rgb, text=TEXTS, padding=True, return_tensors="pt")
    expected = model(**inputs, use_image_text_matching_head=False).logits_per_image.numpy()
    engine = engines["opt"]
    got = engine.itc(engine.embed_images(images), engine.embed_texts(TEXTS))
    np.testing.assert_allclose(got, expected, atol=1e-5)


@torch.no_grad()
def test_itm_equals_transformers_softmax(tiny_dirs, engines, images):
    model, processor = _retrieval(tiny_dirs["opt"])
    rgb = [to_rgb(image) for image in images]
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(rgb))]
    inputs = processor(images=rgb, text=texts, padding=True, return_tensors="pt")
    logits = model(**inputs, use_image_text_matching_head=True).logits_per_image
    expected = logits.softmax(dim=-1)[:, 1].numpy()
    got = engines["opt"].itm(images, texts)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.all((got > 0) & (got < 1))


def _hf_generate(path, images, prompts, decoding) -> list[str]:
    model, processor = _generation(path)
    decoder_only = not model.config.text_config.is_encoder_decoder
    rgb = [to_rgb(image) for image in images]
    inputs = processor(images=rgb, text=prompts, padding=True, return_tensors="pt",
                       padding_side="left" if decoder_only else "right")
    with torch.no_grad():
        out = model.generate(**inputs, **decoding_kwargs(decoding))
    new = out[:, inputs["input_ids"].shape[1]:] if decoder_only else out
    return [text.strip() for text in processor.tokenizer.batch_decode(new, skip_special_tokens=True)]


@pytest.mark.parametrize("decoder", ["opt", "t5"])
def test_captions_equal_transformers_generate(decoder, tiny_dirs, engines, images):
    expected = _hf_generate(tiny_dirs[decoder], images, [""] * len(images), CAPTION)
    got = engines[decoder].caption(images)
    assert got == expected
    assert len(set(got)) > 1, "captions should depend on the image"


@pytest.mark.parametrize("decoder", ["opt", "t5"])
def test_captions_with_prompt_cut_the_prompt(decoder, tiny_dirs, engines, images):
    expected = _hf_generate(tiny_dirs[decoder], images[:3], ["a picture of"] * 3, CAPTION)
    assert engines[decoder].caption(images[:3], prompt="a picture of") == expected


@pytest.mark.parametrize("decoder", ["opt", "t5"])
def test_answers_equal_transformers_generate(decoder, tiny_dirs, engines, images):
    prompts = [vqa_prompt(q) for q in QUESTIONS]
    expected = _hf_generate(tiny_dirs[decoder], images, prompts, ANSWER)
    got = engines[decoder].ask_batch([Question(img, q) for img, q in zip(images, QUESTIONS, strict=True)])
    assert got == expected
    assert all(isinstance(answer, str) for answer in got)
