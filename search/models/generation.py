"""Captions and answers on `Blip2ForConditionalGeneration` modules, batched.

Mirrors `Blip2ForConditionalGeneration.generate` fed with `Blip2Processor` output, but starts
from an encoder output that may be shared with the retrieval model, and pads each batch the
way the decoder needs: left for a decoder-only LM (OPT), right for an encoder-decoder (T5).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
from transformers import Blip2ForConditionalGeneration, PreTrainedTokenizerBase

from .beam_cache import preallocated


@dataclass(frozen=True)
class Decoding:
    num_beams: int
    max_new_tokens: int
    min_new_tokens: int
    length_penalty: float = 1.0


CAPTION = Decoding(num_beams=5, max_new_tokens=30, min_new_tokens=8)  # LAVIS caption defaults
ANSWER = Decoding(num_beams=5, max_new_tokens=10, min_new_tokens=1, length_penalty=-1.0)  # LAVIS VQA


def decoding_kwargs(decoding: Decoding) -> dict:
    return {
        "num_beams": decoding.num_beams,
        "max_new_tokens": decoding.max_new_tokens,
        "min_new_tokens": decoding.min_new_tokens,
        "length_penalty": decoding.length_penalty,
        "do_sample": False,
    }


def stage(config, side, language_model) -> SimpleNamespace:
    """The generation stage as the functions here read it, from the engine's parts: its
    config, query tokens, Q-Former, language projection and language model."""
    return SimpleNamespace(config=config, query_tokens=side.query_tokens, qformer=side.qformer,
                           language_projection=side.language_projection, language_model=language_model,
                           get_input_embeddings=language_model.get_input_embeddings)


def is_decoder_only(model: Blip2ForConditionalGeneration) -> bool:
    return not model.config.text_config.is_encoder_decoder


def max_positions(model: Blip2ForConditionalGeneration, tokenizer: PreTrainedTokenizerBase) -> int:
    """How many tokens the language model takes in all: image placeholders, prompt and answer."""
    text = model.config.text_config
    limit = getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", None)
    return int(limit or min(tokenizer.model_max_length, 4096))


def memory_per_image(config, dtype: torch.dtype, decoding: Decoding, prompt: int = 4) -> int:
    """Bytes one image adds to a batched beam search, at most: its beams' key/value cache
    (`beam_cache`: every layer, at the final length, in the language model's `dtype`) and
    their logits in float32, a few copies deep, with `prompt` text tokens after the image's
    query tokens (a caption's prompt is one or two). `config`: the generation model's. At
    OPT-2.7b widths in float32 with 12 new tokens: 157 MB, a bound on what a caption batch's
    peak memory was measured to grow by an image (BENCHMARKS.md)."""
    text = config.text_config
    positions = config.num_query_tokens + prompt + decoding.max_new_tokens
    layers = text.num_hidden_layers * (2 if text.is_encoder_decoder else 1)  # T5: self + cross
    cache = decoding.num_beams * positions * layers * 2 * text.hidden_size * dtype.itemsize
    logits = decoding.num_beams * text.vocab_size * 4 * 4
    return cache + logits


def prompt_tokens(
    model: Blip2ForConditionalGeneration, tokenizer: PreTrainedTokenizerBase, prompts: list[str],
    max_new_tokens: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, Q + T) ids and mask: Q image placeholders, then the padded prompt (processor layout).

    Prompts too long for the model lose their start (the tokenizer truncates on the left, so
    a long chat drops its oldest turns and keeps the question).
    """
    side = "left" if is_decoder_only(model) else "right"
    n_query = model.config.num_query_tokens
    budget = max(max_positions(model, tokenizer) - n_query - max_new_tokens, 8)
    text = tokenizer(prompts, padding=True, padding_side=side, truncation=True, max_length=budget,
                     return_tensors="pt")
    image_ids = torch.full((len(prompts), n_query), model.config.image_token_id, dtype=torch.long)
    ids = torch.cat([image_ids, text["input_ids"]], dim=1)
    mask = torch.cat([torch.ones_like(image_ids), text["attention_mask"]], dim=1)
    return ids, mask


def generate_ids(
    model: Blip2ForConditionalGeneration,
    tokenizer: PreTrainedTokenizerBase,
    image_embeds: torch.Tensor,
    prompts: list[str],
    decoding: Decoding,
) -> torch.Tensor:
    """(B, new tokens): one answer's ids per image, without the prompt; `image_embeds` is
    after this model's `post_layernorm`. `texts` turns them into strings."""
    batch = image_embeds.shape[0]
    ones = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
    query = model.query_tokens.expand(batch, -1, -1)
    query_out = model.qformer(
        query_embeds=query, encoder_hidden_states=image_embeds, encoder_attention_mask=ones
    ).last_hidden_state  # (B, Q, H_qformer), float32
    lm_inputs = model.language_projection(query_out.to(image_embeds.dtype))  # (B, Q, H_lm)

    ids, mask = prompt_tokens(model, tokenizer, prompts, decoding.max_new_tokens)
    ids, mask = ids.to(image_embeds.device), mask.to(image_embeds.device)
    embeds = model.get_input_embeddings()(ids)
    placeholders = (ids == model.config.image_token_id).unsqueeze(-1)
    embeds = embeds.masked_scatter(placeholders, lm_inputs.to(embeds.dtype))

    lm = model.language_model
    if is_decoder_only(model):
        # generate() copies each prompt once per beam before its first forward pass, so the
        # prompt (32 image tokens and the text) would run `num_beams` times. Run all of it but
        # its last token once, copy that cache per beam; generate() then starts at the last
        # token, which is text (left padding), so it is read from `ids`. The cache is allocated
        # once at its final length (beam_cache).
        prompt = lm(inputs_embeds=embeds[:, :-1], attention_mask=mask[:, :-1], use_cache=True,
                    logits_to_keep=1)
        length = ids.shape[1] + decoding.max_new_tokens
        cache = preallocated(prompt.cache, decoding.num_beams, length)
        out = lm.generate(input_ids=ids, attention_mask=mask, cache=cache,
                          **decoding_kwargs(decoding))
        return out[:, ids.shape[1] :]  # generate returns prompt + answer
    return lm.generate(inputs_embeds=embeds, attention_mask=mask, **decoding_kwargs(decoding))


def texts(tokenizer: PreTrainedTokenizerBase, new_tokens: torch.Tensor) -> list[str]:
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
