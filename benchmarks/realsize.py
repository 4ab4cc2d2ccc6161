"""BLIP-2 at its real dimensions, with random weights, built in seconds.

The configs are those of `Salesforce/blip2-itm-vit-g` and `Salesforce/blip2-opt-2.7b`:
ViT-g (1408 hidden, 39 layers, patch 14, 224 px), a Q-Former of 768 hidden, 12 layers and 32
queries, OPT-2.7b (2560 hidden, 32 layers, a 50,272-word vocabulary). `layers` scales every
stack down for the quick run at the same widths. Weights are not initialised one by one (a
normal draw over 3.8 billion values takes minutes on 2 cores): each tensor is filled from one
shared block of random numbers, which costs a memory copy. The tokenizers are the small
word-level ones of the test checkpoints; their ids fall inside the real vocabularies, so
every matmul has its real size.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2ForImageTextRetrieval,
    Blip2Processor,
)

from demo.vocabulary import bert_tokenizer, image_processor, opt_tokenizer
from search.config import Precision
from search.models import precision
from search.models.engine import Blip2Engine
from search.models.loading import LoadedPair

BLOCK = 1_000_003  # a prime: tiled blocks do not line up with matrix rows


@dataclass(frozen=True)
class Depth:
    vision: int = 39
    qformer: int = 12
    language: int = 32

    @property
    def full(self) -> bool:
        return self == Depth()


def config(depth: Depth, *, text_input: bool, image_token: int, pad: int, bos: int, eos: int) -> Blip2Config:
    return Blip2Config(
        vision_config={"hidden_size": 1408, "intermediate_size": 6144, "num_hidden_layers": depth.vision,
                       "num_attention_heads": 16, "image_size": 224, "patch_size": 14, "qkv_bias": True},
        qformer_config={"hidden_size": 768, "num_hidden_layers": depth.qformer, "num_attention_heads": 12,
                        "intermediate_size": 3072, "cross_attention_frequency": 2,
                        "encoder_hidden_size": 1408,
                        "vocab_size": 30523, "use_qformer_text_input": text_input},
        text_config={"model_type": "opt", "hidden_size": 2560, "num_hidden_layers": depth.language,
                     "num_attention_heads": 32, "ffn_dim": 10240, "word_embed_proj_dim": 2560,
                     "vocab_size": 50272, "max_position_embeddings": 2048, "pad_token_id": pad,
                     "bos_token_id": bos, "eos_token_id": eos},
        num_query_tokens=32, image_text_hidden_size=256, image_token_index=image_token,
    )


def _fill(model: torch.nn.Module, seed: int) -> None:
    """Every float tensor from one random block: matrices N(0, 0.02), norms 1, biases 0."""
    generator = torch.Generator().manual_seed(seed)
    block = torch.randn(BLOCK, generator=generator) * 0.02
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if not tensor.is_floating_point():
                if name.endswith("position_ids"):  # the one integer buffer: 0, 1, 2, ...
                    tensor.copy_(torch.arange(tensor.shape[-1]).expand_as(tensor))
                continue
            if name.endswith("bias"):
                tensor.zero_()
            elif tensor.dim() == 1 and ("norm" in name or name.endswith("weight")):
                tensor.fill_(1.0)
            else:
                flat = tensor.view(-1)
                offset = zlib.crc32(name.encode()) % BLOCK
                for start in range(0, flat.numel(), BLOCK):
                    piece = flat[start : start + BLOCK]
                    rolled = torch.roll(block, offset + start)[: piece.numel()]
                    piece.copy_(rolled)


def build(depth: Depth = Depth(), *, dtype: torch.dtype = torch.float32, seed: int = 0) -> LoadedPair:
    """The retrieval and generation models, sharing one image encoder's weights (as the real
    pair does by checkpoint), in `dtype` on the CPU, in eval mode."""
    ret_tok, gen_tok = bert_tokenizer(), opt_tokenizer()
    ret_proc = Blip2Processor(image_processor(224), ret_tok, num_query_tokens=32)
    gen_proc = Blip2Processor(image_processor(224), gen_tok, num_query_tokens=32)
    with torch.device("meta"):
        ret = Blip2ForImageTextRetrieval(config(
            depth, text_input=True, image_token=ret_tok.convert_tokens_to_ids("<image>"),
            pad=ret_tok.pad_token_id, bos=ret_tok.cls_token_id, eos=ret_tok.sep_token_id))
        gen = Blip2ForConditionalGeneration(config(
            depth, text_input=False, image_token=gen_tok.convert_tokens_to_ids("<image>"),
            pad=gen_tok.pad_token_id, bos=gen_tok.bos_token_id, eos=gen_tok.eos_token_id))
    gen.vision_model = torch.nn.Identity()  # replaced below by the retrieval model's encoder
    for model in (ret, gen):
        model.to_empty(device="cpu")
        _fill(model, seed)
        model.to(dtype).eval().requires_grad_(False)
    gen.vision_model = ret.vision_model  # one set of encoder weights in memory, as when shared
    return LoadedPair(ret, ret_proc, gen, gen_proc, torch.device("cpu"))


def default_engine(depth: Depth = Depth(), *, dtype: str | None = None,
                   name: str = "blip2-real-size-random") -> Blip2Engine:
    """The real-size models as the product runs them on this CPU by default: every stage's
    precision from `precision.plan` with its settings at `auto` (`dtype`: the models' weights
    instead of the measured default)."""
    plan = precision.plan(torch.device("cpu"), Precision(dtype or "auto"))
    return Blip2Engine.from_pair(build(depth, dtype=getattr(torch, plan.dtype)), name=name, plan=plan)


def write(folder, depth: Depth = Depth(), *, dtype: torch.dtype = torch.float16, shard: str = "2GB") -> None:
    """The pair saved as the hub lays it out: `retrieval/` and `generation/`, each a config,
    a processor and sharded safetensors in `dtype` with their index (float16: 9.4 GB at real
    size). What a user's downloaded checkpoints look like, for cold starts measured from disk."""
    from pathlib import Path

    folder = Path(folder)
    pair = build(depth, dtype=dtype)
    for name, model, processor in (("retrieval", pair.retrieval, pair.retrieval_processor),
                                   ("generation", pair.generation, pair.generation_processor)):
        model.save_pretrained(folder / name, max_shard_size=shard)
        processor.save_pretrained(folder / name)
