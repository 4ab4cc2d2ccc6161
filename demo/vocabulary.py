"""Word-level tokenizers and the image processor of the demo world's models.

The tiny test checkpoints (`tiny`), the demo model (`training`) and the real-size benchmark
models take their tokenizers from here: every word of the shapes world and of the prompts
the engine builds, built with the `tokenizers` library, with no download.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BlipImageProcessorPil, PreTrainedTokenizerFast

# The words of the shapes world plus the words of the prompts the engine builds.
WORDS = (
    "a an and the on of is are there what which how many color shape background question answer "
    "circle square triangle star red green blue yellow purple orange white black small large "
    "one two yes no image photo picture this that in with it dog cat beach sunset"
).split()
PUNCTUATION = list(".,:?!'")

IMAGE_SIZE = 32  # pixels: the tiny checkpoints' (patch 8 gives 16 patches + [CLS])


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
