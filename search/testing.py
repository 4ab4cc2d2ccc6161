"""Tiny BLIP-2 checkpoints for tests, written in the same HF format as the real ones.

`write_tiny_pair(out)` writes `out/retrieval` (Blip2ForImageTextRetrieval + Blip2Processor
with a BERT-style tokenizer) and `out/generation` (Blip2ForConditionalGeneration with an
OPT or a Flan-T5-style decoder + Blip2Processor). Both hold the same image-encoder weights,
as the real `blip2-itm-vit-g` and `blip2-opt-*` checkpoints do, so the one-pass path applies.
Everything loads back through `from_pretrained`.

    python -m search.testing OUT_DIR [--decoder opt|t5] [--seed N] [--distinct-encoders]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    Blip2Config,
    Blip2ForConditionalGeneration,
    Blip2ForImageTextRetrieval,
    Blip2Processor,
    BlipImageProcessorPil,
    PreTrainedTokenizerFast,
)

# The words of the shapes world plus the words of the prompts the engine builds.
WORDS = (
    "a an and the on of is are there what which how many color shape background question answer "
    "circle square triangle star red green blue yellow purple orange white black small large "
    "one two yes no image photo picture this that in with it dog cat beach sunset"
).split()
PUNCTUATION = list(".,:?!'")

IMAGE_SIZE = 32  # pixels; patch 8 gives 16 patches + [CLS]
NUM_QUERY_TOKENS = 8
SCALE = 0.2  # weight std: large enough that outputs depend on the image


def _word_level(specials: list[str], template: str | None) -> Tokenizer:
    vocab = {token: i for i, token in enumerate(specials + WORDS + PUNCTUATION)}
    unk = next(s for s in specials if "unk" in s.lower())
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    if template:
        pieces = [p for p in template.split() if p != "$A"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=template, special_tokens=[(p, vocab[p]) for p in pieces]
        )
    return tokenizer


def bert_tokenizer() -> PreTrainedTokenizerFast:
    """Q-Former side: [CLS] first (the text side reads it), right padding."""
    tok = _word_level(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], "[CLS] $A [SEP]")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", padding_side="right", model_max_length=64,
    )


def opt_tokenizer() -> PreTrainedTokenizerFast:
    """OPT side: `</s>` is both BOS (prepended) and EOS, `<pad>` is 1, as in facebook/opt-*."""
    tok = _word_level(["<s>", "<pad>", "</s>", "<unk>"], "</s> $A")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", padding_side="left", model_max_length=128,
    )


def t5_tokenizer() -> PreTrainedTokenizerFast:
    """Flan-T5 side: `</s>` appended, `<pad>` 0 doubles as the decoder start token."""
    tok = _word_level(["<pad>", "</s>", "<unk>"], "$A </s>")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        padding_side="right", model_max_length=128,
    )


def image_processor(size: int = IMAGE_SIZE) -> BlipImageProcessorPil:
    return BlipImageProcessorPil(
        size={"height": size, "width": size},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
        do_convert_rgb=True,
    )


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
    parser = argparse.ArgumentParser(prog="python -m search.testing", description=__doc__.split("\n")[0])
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
