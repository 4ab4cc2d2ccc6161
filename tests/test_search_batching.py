"""A batch of 8 gives the same results as 8 calls of one, across mixed sizes and modes."""

from __future__ import annotations

import numpy as np
import torch

from search.models import Question, generation
from search.models.loading import free_memory
from search.models.prompts import Turn, vqa_prompt
from tests.support.prompts import QUESTIONS, TEXTS


def test_image_and_text_vectors(pair, images):
    engine = pair.engine
    batched = engine.embed_images(images)
    singles = np.concatenate([engine.embed_images([image]) for image in images])
    np.testing.assert_allclose(batched, singles, atol=pair.atol)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=-1), 1.0, atol=pair.atol)
    texts = engine.embed_texts(TEXTS)  # different lengths: right padding must not matter
    singles = np.concatenate([engine.embed_texts([text]) for text in TEXTS])
    np.testing.assert_allclose(texts, singles, atol=pair.atol)


def test_match_probabilities(pair, images):
    engine = pair.engine
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(images))]
    batched = engine.itm(images, texts)
    singles = np.array([engine.itm([image], [text])[0] for image, text in zip(images, texts, strict=True)])
    np.testing.assert_allclose(batched, singles, atol=pair.atol)


def test_captions(pair, images):
    engine = pair.engine
    assert engine.caption(images) == [engine.caption([image])[0] for image in images]


def test_answers_with_prompts_of_different_lengths(pair, images):
    engine = pair.engine
    history = (Turn("how many shapes are there?", "two"),)
    questions = [Question(image, q, history if i % 2 else ()) for i, (image, q)
                 in enumerate(zip(images, QUESTIONS, strict=True))]
    batched = engine.ask_batch(questions)
    assert batched == [engine.ask(q.image, q.question, q.history) for q in questions]


def test_a_chat_longer_than_the_model_keeps_the_question(engines, images):
    """A history past the decoder's positions drops its oldest turns instead of failing."""
    from search.models.generation import ANSWER, max_positions, prompt_tokens

    for name in ("opt", "t5"):
        engine = engines[name]
        model = engine.generator
        tokenizer = engine._gen_processor.tokenizer
        history = [Turn(f"is there a {shape} ?", "no") for shape in ["circle", "square", "star"] * 30]
        engine.ask(images[0], "what color is the circle?", history)  # past the positions it would raise
        prompt = vqa_prompt("what color is the circle?", history)
        ids, _ = prompt_tokens(model, tokenizer, [prompt], ANSWER.max_new_tokens)
        assert ids.shape[1] + ANSWER.max_new_tokens <= max_positions(model, tokenizer)
        tail = tokenizer.decode(ids[0], skip_special_tokens=True)
        assert tail.rstrip().endswith("what color is the circle? answer :")


def test_batch_size_is_what_a_share_of_the_free_memory_holds(pair):
    engine = pair.engine
    per_image = generation.memory_per_image(engine.generator.config, torch.float32, engine.caption_decoding)
    assert engine.batch_size(share=0.5, free=2 * 5 * per_image + 1) == 5
    assert engine.batch_size(free=0) == 1
    assert engine.batch_size(most=12, free=1 << 50) == 12


def test_free_memory_is_what_the_kernel_says_is_available():
    """MemAvailable (page cache that can be dropped included), read alongside: it moves a
    little between the two reads."""
    with open("/proc/meminfo") as info:
        available = next(int(line.split()[1]) * 1024 for line in info if line.startswith("MemAvailable:"))
    assert abs(free_memory(torch.device("cpu")) - available) <= 0.05 * available
