"""Tiny BLIP-2 checkpoints for tests, written in the same HF format as the real ones.

`write_tiny_pair(out)` writes `out/retrieval` (Blip2ForImageTextRetrieval + Blip2Processor
with a BERT-style tokenizer) and `out/generation` (Blip2ForConditionalGeneration with an
OPT or a Flan-T5-style decoder + Blip2Processor). Both hold the same image-encoder weights,
as the real `blip2-itm-vit-g` and `blip2-opt-*` checkpoints do, so the one-pass path applies.
Everything loads back through `from_pretrained`.

    python -m tests.support.tiny OUT_DIR [--decoder opt|t5] [--seed N] [--distinct-encoders]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2ForImageTextRetrieval,
    Blip2Processor,
    PreTrainedTokenizerFast,
)

from demo.vocabulary import IMAGE_SIZE, bert_tokenizer, image_processor, opt_tokenizer, t5_tokenizer

NUM_QUERY_TOKENS = 8
SCALE = 0.2  # weight std: large enough that outputs depend on the image


def _text_config(decoder: str, vocab_size: int, tokenizer: PreTrainedTokenizerFast) -> dict:
    common = {"vocab_size": vocab_size, "pad_token_id": tokenizer.pad_token_id,
              "eos_token_id": tokenizer.eos_token_id}
    if decoder == "opt":
        return common | {
            "model_type": "opt", "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "ffn_dim": 64, "max_position_embeddings": 128,
            "word_embed_proj_dim": 32, "bos_token_id": tokenizer.bos_token_id,
        }
    return common | {
        "model_type": "t5", "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2,
        "num_decoder_layers": 2, "num_heads": 4, "feed_forward_proj": "gated-gelu",
        "decoder_start_token_id": tokenizer.pad_token_id, "tie_word_embeddings": False,
    }


def tiny_config(
    text_config: dict, *, image_token_index: int, qformer_vocab: int, text_input: bool
) -> Blip2Config:
    return Blip2Config(
        vision_config={
            "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "image_size": IMAGE_SIZE, "patch_size": 8,
            "initializer_range": 0.02,
        },
        qformer_config={
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 64, "cross_attention_frequency": 1,
            "vocab_size": qformer_vocab, "max_position_embeddings": 64,
            "use_qformer_text_input": text_input,  # the retrieval Q-Former reads text too
        },
        text_config=text_config,
        num_query_tokens=NUM_QUERY_TOKENS,
        image_text_hidden_size=16,
        image_token_index=image_token_index,
    )


def _randomise(model: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every tensor non-trivial values: default inits leave LayerNorms at 1/0 and query
    tokens at 0 (every query identical), which would hide wiring mistakes in parity tests."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim == 1 and ("norm" in name or "layer_norm" in name):
                param.copy_(1.0 + 0.1 * noise if name.endswith("weight") else 0.1 * noise)
            else:
                param.copy_(SCALE * noise)


def _processor(tokenizer: PreTrainedTokenizerFast) -> tuple[Blip2Processor, int]:
    processor = Blip2Processor(image_processor(), tokenizer, num_query_tokens=NUM_QUERY_TOKENS)
    return processor, tokenizer.convert_tokens_to_ids("<image>")


def write_tiny_pair(
    out: str | Path, *, decoder: str = "opt", seed: int = 0, distinct_encoders: bool = False
) -> Path:
    """Write `out/retrieval` and `out/generation`; return `out`."""
    if decoder not in ("opt", "t5"):
        raise ValueError(f"decoder must be 'opt' or 't5', not {decoder!r}")
    out = Path(out)
    generator = torch.Generator().manual_seed(seed)

    ret_processor, ret_image_token = _processor(bert_tokenizer())
    ret_config = tiny_config(
        _text_config("opt", 8, opt_tokenizer()),  # unused by the retrieval model
        image_token_index=ret_image_token, qformer_vocab=len(ret_processor.tokenizer),
        text_input=True,
    )
    retrieval = Blip2ForImageTextRetrieval(ret_config)
    _randomise(retrieval, generator)

    gen_tokenizer = opt_tokenizer() if decoder == "opt" else t5_tokenizer()
    gen_processor, gen_image_token = _processor(gen_tokenizer)
    gen_config = tiny_config(
        _text_config(decoder, len(gen_tokenizer), gen_tokenizer),
        image_token_index=gen_image_token, qformer_vocab=len(ret_processor.tokenizer),
        text_input=False,
    )
    generation = Blip2ForConditionalGeneration(gen_config)
    _randomise(generation, generator)
    if not distinct_encoders:
        # The frozen encoder is shared; each stage keeps its own post_layernorm (LAVIS' ln_vision).
        shared = {k: v for k, v in retrieval.vision_model.state_dict().items()
                  if not k.startswith("post_layernorm")}
        generation.vision_model.load_state_dict(shared, strict=False)

    for name, model, processor in (("retrieval", retrieval, ret_processor),
                                   ("generation", generation, gen_processor)):
        model.save_pretrained(out / name)
        processor.save_pretrained(out / name)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.tiny", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--decoder", choices=("opt", "t5"), default="opt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distinct-encoders", action="store_true",
                        help="give the two checkpoints different image-encoder weights")
    args = parser.parse_args(argv)
    write_tiny_pair(args.out, decoder=args.decoder, seed=args.seed,
                    distinct_encoders=args.distinct_encoders)


if __name__ == "__main__":
    main()
