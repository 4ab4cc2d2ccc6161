"""`python -m tests.support.tiny` writes checkpoints that load through `from_pretrained`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from transformers import Blip2ForConditionalGeneration, Blip2Processor

pytestmark = pytest.mark.slow  # checkpoints written by a module run as a process

FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "processor_config.json")


@pytest.mark.parametrize("decoder", ["opt", "t5"])
def test_module_writes_a_loadable_pair(decoder, tmp_path):
    out = tmp_path / decoder
    subprocess.run([sys.executable, "-m", "tests.support.tiny", str(out), "--decoder", decoder],
                   check=True, capture_output=True, timeout=120)
    for part in ("retrieval", "generation"):
        for name in FILES:
            assert (out / part / name).is_file(), f"{part}/{name}"
    model = Blip2ForConditionalGeneration.from_pretrained(out / "generation")
    processor = Blip2Processor.from_pretrained(out / "generation")
    assert model.config.text_config.model_type == decoder
    assert model.config.text_config.is_encoder_decoder == (decoder == "t5")
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_id
    assert processor.tokenizer("a red circle")["input_ids"]  # a real tokenizer, not a stub
