"""Training the demo model: a tiny BLIP-2 learned from scratch on the shapes world.

The same transformers classes as the real presets. Stage 0 (vision_stage) pretrains the
image encoder, which BLIP-2 borrows from EVA-CLIP; stage 1 freezes it, as BLIP-2 does, and
trains the rest on its output, computed once for the whole pool. The retrieval model learns
BLIP-2's stage-1 losses (ITC with a learned temperature, and ITM with hard negatives that
change one attribute of the caption), on full captions and on the short phrases users type
as queries (phrases); the generation model learns the language-modelling loss on captions
and on `Question: {q} Answer:` prompts, in the exact formats the engine uses. Both share one
image encoder and one Q-Former query path, so the saved pair holds identical encoder
weights and the engine's one-pass path applies. Stage 1 runs on the encoder output cached
once, in bfloat16 autocast: each is a large saving a step (the model card has the figures).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2ForImageTextRetrieval,
    Blip2Processor,
)

from search.models import retrieval
from search.models.prompts import vqa_prompt

from . import data as demo_data
from . import vision_stage
from .vocabulary import bert_tokenizer, image_processor, opt_tokenizer


@dataclass(frozen=True)
class DemoConfig:
    image_size: int = 96
    patch: int = 8
    vision_hidden: int = 128
    vision_layers: int = 4
    qformer_hidden: int = 128
    qformer_layers: int = 2
    queries: int = 8
    embed_dim: int = 64
    lm_hidden: int = 128
    lm_layers: int = 2
    batch_size: int = 64
    pool: int = 24_000
    lr: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.05
    minutes: float = 58.0
    max_steps: int | None = None
    seed: int = 0
    shape_focus: float = 0.0  # share of the steps, at the start, spent on shape-only questions
    vision_minutes: float = 28.0  # stage 0, within `minutes`: the image encoder alone (vision_stage)


def build(cfg: DemoConfig):
    """(retrieval, generation, retrieval processor, generation processor), freshly initialised
    and tied: one vision encoder, one set of query tokens, one Q-Former query path."""
    torch.manual_seed(cfg.seed)
    ret_tok, gen_tok = bert_tokenizer(), opt_tokenizer()
    ret_proc = Blip2Processor(image_processor(cfg.image_size), ret_tok, num_query_tokens=cfg.queries)
    gen_proc = Blip2Processor(image_processor(cfg.image_size), gen_tok, num_query_tokens=cfg.queries)

    def config(text_input: bool, image_token: int) -> Blip2Config:
        return Blip2Config(
            vision_config={"hidden_size": cfg.vision_hidden, "intermediate_size": 4 * cfg.vision_hidden,
                           "num_hidden_layers": cfg.vision_layers, "num_attention_heads": 4,
                           "image_size": cfg.image_size, "patch_size": cfg.patch, "initializer_range": 0.02},
            qformer_config={"hidden_size": cfg.qformer_hidden, "num_hidden_layers": cfg.qformer_layers,
                            "num_attention_heads": 4, "intermediate_size": 4 * cfg.qformer_hidden,
                            "cross_attention_frequency": 1, "vocab_size": len(ret_tok),
                            "max_position_embeddings": 64, "use_qformer_text_input": text_input},
            text_config={"model_type": "opt", "hidden_size": cfg.lm_hidden,
                         "num_hidden_layers": cfg.lm_layers, "num_attention_heads": 4,
                         "ffn_dim": 4 * cfg.lm_hidden, "max_position_embeddings": 128,
                         "word_embed_proj_dim": cfg.lm_hidden, "vocab_size": len(gen_tok),
                         "pad_token_id": gen_tok.pad_token_id, "bos_token_id": gen_tok.bos_token_id,
                         "eos_token_id": gen_tok.eos_token_id},
            num_query_tokens=cfg.queries, image_text_hidden_size=cfg.embed_dim, image_token_index=image_token,
        )

    ret = Blip2ForImageTextRetrieval(config(True, ret_tok.convert_tokens_to_ids("<image>")))
    gen = Blip2ForConditionalGeneration(config(False, gen_tok.convert_tokens_to_ids("<image>")))
    with torch.no_grad():
        ret.query_tokens.normal_(0.0, 0.02)  # zeros would make every query identical
    gen.vision_model = ret.vision_model
    gen.query_tokens = ret.query_tokens
    gen.qformer.layernorm = ret.qformer.layernorm
    for mine, theirs in zip(gen.qformer.encoder.layer, ret.qformer.encoder.layer, strict=True):
        for name in ("attention", "crossattention", "intermediate_query", "output_query"):
            setattr(mine, name, getattr(theirs, name))
    return ret, gen, ret_proc, gen_proc


def lm_batch(tokenizer, prompts: list[str], targets: list[str]) -> tuple[torch.Tensor, ...]:
    """Right-padded ids, mask and labels: [BOS] prompt target [EOS], loss on target and EOS."""
    rows, labels = [], []
    for prompt, target in zip(prompts, targets, strict=True):
        head = tokenizer(prompt)["input_ids"]  # starts with BOS, as at inference
        tail = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(head + tail)
        labels.append([-100] * len(head) + tail)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    target = torch.tensor([r + [-100] * (width - len(r)) for r in labels])
    return ids, mask, target


def losses(ret, gen, ret_tok, gen_tok, batch: dict, vision: torch.Tensor,
           log_temp: torch.Tensor) -> dict[str, torch.Tensor]:
    """Stage 1's losses on one batch, given the image encoder's output `vision` (B, N, H)."""
    size = len(vision)
    # ITC: max over queries of the cosine; soft targets where captions coincide, or where a
    # phrase fits several images
    image_vecs = retrieval.image_vectors(ret, vision)
    same = torch.tensor([[a == b for b in batch["captions"]] for a in batch["captions"]])
    itc = _contrastive(image_vecs, _text_vectors(ret, ret_tok, batch["captions"]), same, log_temp)
    phrases = _text_vectors(ret, ret_tok, batch["phrases"])
    itc_phrases = _contrastive(image_vecs, phrases, batch["phrase_matches"], log_temp)
    # ITM: each image with its caption, a one-attribute hard negative, a phrase that fits it
    # and one that does not
    texts = batch["captions"] + batch["negatives"] + batch["phrases"] + batch["phrase_negatives"]
    pair = ret_tok(texts, padding=True, padding_side="right", return_tensors="pt")
    logits = retrieval.match_logits(ret, vision.repeat(4, 1, 1), pair["input_ids"], pair["attention_mask"])
    labels = torch.cat([torch.ones(size), torch.zeros(size), torch.ones(size), torch.zeros(size)]).long()
    itm = F.cross_entropy(logits, labels)
    # LM: a caption and an answer per image, in the engine's prompt formats
    ones = torch.ones(vision.shape[:-1], dtype=torch.long)
    query = gen.qformer(query_embeds=gen.query_tokens.expand(size, -1, -1), encoder_hidden_states=vision,
                        encoder_attention_mask=ones).last_hidden_state
    prefix = gen.language_projection(query).repeat(2, 1, 1)  # (2B, Q, H_lm)
    prompts = [""] * size + [vqa_prompt(q) for q in batch["questions"]]
    ids, mask, labels = lm_batch(gen_tok, prompts, batch["captions"] + batch["answers"])
    embeds = torch.cat([prefix, gen.get_input_embeddings()(ids)], dim=1)
    n_query = prefix.shape[1]
    full_mask = torch.cat([torch.ones(2 * size, n_query, dtype=torch.long), mask], dim=1)
    full_labels = torch.cat([torch.full((2 * size, n_query), -100), labels], dim=1)
    out = gen.language_model(inputs_embeds=embeds, attention_mask=full_mask)
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1]).float()
    per_token = F.cross_entropy(logits, full_labels[:, 1:].reshape(-1), reduction="none").view(2 * size, -1)
    counts = (full_labels[:, 1:] != -100).sum(dim=1).clamp(min=1)
    per_sequence = per_token.sum(dim=1) / counts
    captions, answers = per_sequence[:size].mean(), per_sequence[size:].mean()
    return {"itc": itc, "itc_phrases": itc_phrases, "itm": itm, "caption": captions, "answer": answers}


def _text_vectors(ret, tokenizer, texts: list[str]) -> torch.Tensor:
    tokens = tokenizer(texts, padding=True, padding_side="right", return_tensors="pt")
    return retrieval.text_vectors(ret, tokens["input_ids"], tokens["attention_mask"])


def _contrastive(image_vecs: torch.Tensor, text_vecs: torch.Tensor, fits: torch.Tensor,
                 log_temp: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy over the batch's (image, text) similarities, with the mass of
    each row (text i over images) and column spread evenly over every pair that fits."""
    sims = retrieval.itc(image_vecs, text_vecs).float() * log_temp.exp()  # (images, texts)
    fits = fits.float().t()  # given as (texts, images)
    to_texts = fits / fits.sum(dim=1, keepdim=True)
    to_images = fits.t() / fits.t().sum(dim=1, keepdim=True)
    return (torch.sum(-to_texts * sims.log_softmax(dim=1), 1).mean()
            + torch.sum(-to_images * sims.t().log_softmax(dim=1), 1).mean()) / 2


def train(out: Path, cfg: DemoConfig = DemoConfig(), log: Callable[[str], None] = lambda line: None) -> dict:
    """Train for `cfg.minutes` (or `cfg.max_steps`), save the pair to `out`, return the log."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    started = time.monotonic()
    ret, gen, ret_proc, gen_proc = build(cfg)
    log(f"building a pool of {cfg.pool} samples")
    pool = demo_data.build_pool(ret_proc.image_processor, seed=cfg.seed, count=cfg.pool)
    log(f"pool ready in {time.monotonic() - started:.0f} s")
    goal = vision_stage.targets(pool, cfg.image_size // cfg.patch)
    history = vision_stage.pretrain(
        ret.vision_model, vision_stage.AttributeHeads(cfg.vision_hidden), goal, pool,
        seconds=cfg.vision_minutes * 60, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed, log=log,
        max_steps=cfg.max_steps)
    log(f"stage 0 done at {time.monotonic() - started:.0f} s")
    # Stage 1, as in BLIP-2: the image encoder is frozen, so its output is computed once
    ret.vision_model.requires_grad_(False)
    features = vision_stage.encode(ret.vision_model, pool.pixels)
    log(f"pool encoded at {time.monotonic() - started:.0f} s")
    log_temp = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = {id(p): p for p in [*ret.parameters(), *gen.parameters()] if p.requires_grad}
    optimizer = torch.optim.AdamW([*params.values(), log_temp], lr=cfg.lr, weight_decay=cfg.weight_decay)
    ret.train()
    gen.train()
    rng, np_rng = random.Random(cfg.seed), np.random.default_rng(cfg.seed)
    step, planned = 0, cfg.max_steps or 10**9
    train_start = time.monotonic()
    budget = cfg.minutes * 60 - (train_start - started)
    while step < planned and (cfg.max_steps or time.monotonic() - train_start < budget):
        if step == 30 and not cfg.max_steps:  # plan the schedule from the measured step time
            planned = int(budget / ((time.monotonic() - train_start) / 30))
        for group in optimizer.param_groups:
            group["lr"] = _lr(cfg, step, planned)
        focus = step < cfg.shape_focus * planned
        index = np_rng.choice(len(pool), cfg.batch_size, replace=False)
        batch = demo_data.batch(pool, index, rng, focus)
        vision = features[torch.as_tensor(index)].float()
        with torch.autocast("cpu", dtype=torch.bfloat16):  # 1.6x faster a step than float32
            parts = losses(ret, gen, ret_proc.tokenizer, gen_proc.tokenizer, batch, vision, log_temp)
        loss = sum(parts.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        optimizer.step()
        with torch.no_grad():
            log_temp.clamp_(0, math.log(100))
        step += 1
        vision_stage.record(history, log, stage=1, step=step, seconds=time.monotonic() - started, parts=parts)
    save(out, ret, gen, ret_proc, gen_proc)
    report = {"config": asdict(cfg), "steps": step, "seconds": round(time.monotonic() - started),
              "threads": torch.get_num_threads(), "history": history}
    (out / "training.json").write_text(json.dumps(report, indent=1))
    return report


def save(out: Path, ret, gen, ret_proc, gen_proc) -> None:
    ret.eval()
    gen.eval()
    for name, model, processor in (("retrieval", ret, ret_proc), ("generation", gen, gen_proc)):
        model.save_pretrained(out / name)
        processor.save_pretrained(out / name)


def _lr(cfg: DemoConfig, step: int, planned: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, planned - cfg.warmup))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
