"""Each use of the engine builds only the model parts it runs (`models.parts`), read from the
checkpoints' safetensors, and gives what an engine over the whole models loaded gives."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import Blip2VisionModel, OPTForCausalLM

from cli.main import main
from search.config import Precision
from search.models import Blip2Engine
from search.models.loading import load_pair
from search.models.precision import plan
from search.models.reading import query_precision
from search.presets import resolve
from tests.support.corpus import write_corpus
from tests.support.engines import EXACT
from tests.support.prompts import QUESTIONS, TEXTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def built(monkeypatch) -> dict[str, int]:
    """How many image encoders and language models have been constructed since the test began."""
    counts = {"encoder": 0, "language_model": 0}
    for cls, name in ((Blip2VisionModel, "encoder"), (OPTForCausalLM, "language_model")):
        original = cls.__init__

        def counted(self, *args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counted)
    return counts


def test_a_text_query_builds_the_text_side_alone(tiny_dirs, built):
    engine = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=EXACT)
    assert engine.loaded == [] and built == {"encoder": 0, "language_model": 0}
    engine.embed_texts(TEXTS)
    assert engine.loaded == ["text"]
    assert built == {"encoder": 0, "language_model": 0}
    layer = engine.parts["text"].qformer.encoder.layer[0]
    assert not hasattr(layer, "crossattention") and not hasattr(layer, "intermediate_query")


def test_each_use_builds_what_it_runs(tiny_dirs, images, built):
    def fresh() -> Blip2Engine:
        return Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=EXACT)

    engine = fresh()
    engine.embed_images(images[:2])  # a similar by upload
    assert engine.loaded == ["encoder", "retrieval"] and built == {"encoder": 1, "language_model": 0}
    kept = engine.features(images[:2])  # as an index run with --keep-features stores them

    engine = fresh()  # the match head on stored features: no encoder
    engine.itm(engine.from_features(kept, "retrieval"), "a red circle")
    assert engine.loaded == ["retrieval"] and built["encoder"] == 1

    engine = fresh()  # a question on stored features: the language model, no encoder
    engine.ask(engine.from_features(kept[:1], "generation"), "what color is the circle?")
    assert engine.loaded == ["generation", "language_model"] and built == {"encoder": 1, "language_model": 1}

    engine = fresh()  # a question about pixels: the encoder as well
    engine.ask(images[0], "what color is the circle?")
    assert engine.loaded == ["encoder", "generation", "language_model"]


@pytest.mark.parametrize("name", ["opt", "t5", "distinct"])
@pytest.mark.parametrize("wanted", [EXACT, Precision()], ids=["float32", "defaults"])
def test_parts_give_what_the_whole_models_give(tiny_dirs, images, name, wanted):
    """Against an engine over both models loaded whole by `from_pretrained` and made to the
    same plan: vectors and match probabilities within 1e-5, the same captions and answers."""
    folder = str(tiny_dirs[name])
    parts = Blip2Engine.load(folder, device="cpu", precision=wanted)
    here = plan(torch.device("cpu"), wanted)
    query = query_precision(wanted, here, torch.device("cpu"))
    pair = load_pair(resolve(folder), device="cpu", dtype=here.dtype)
    whole = Blip2Engine.from_pair(pair, name=name, plan=here, query_dtype=query)
    assert parts.precision == whole.precision and parts.encoder_mode == whole.encoder_mode
    for engine in (parts, whole):
        engine.outputs = (engine.embed_texts(TEXTS), engine.embed_images(images),
                          engine.itm(images, TEXTS[0]), engine.caption(images[:3]),
                          engine.ask_each(images[:3], QUESTIONS[0]))
    for mine, theirs in zip(parts.outputs[:3], whole.outputs[:3], strict=True):
        np.testing.assert_allclose(mine, theirs, atol=1e-5)
    assert parts.outputs[3:] == whole.outputs[3:]
    ranked = [np.argsort(-engine.itc(engine.outputs[1], engine.outputs[0]), axis=0)
              for engine in (parts, whole)]
    np.testing.assert_array_equal(*ranked)  # the same images in the same order for every query


def test_int8_stages_are_cached_and_read_back(tiny_dirs, images, tmp_path):
    """The first load quantizes and writes the int8 stages; the second reads them, quantizes
    nothing, and runs the same numbers."""
    wanted = replace(EXACT, encoder="int8", decoder="int8")
    first = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=wanted, cache=tmp_path)
    outputs = (first.embed_images(images[:2]), first.caption(images[:2]))
    stored = sorted(path.name for path in (tmp_path / "int8").rglob("*.safetensors"))
    assert stored == ["encoder.safetensors", "language_model.safetensors"]

    import search.models.precision as precision

    calls = []
    real = precision.quantize_linear_int8
    precision.quantize_linear_int8 = lambda module: calls.append(module) or real(module)
    try:
        second = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=wanted, cache=tmp_path)
        again = (second.embed_images(images[:2]), second.caption(images[:2]))
    finally:
        precision.quantize_linear_int8 = real
    assert calls == []
    np.testing.assert_array_equal(outputs[0], again[0])
    assert outputs[1] == again[1]


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory, tiny_dirs) -> Path:
    root = tmp_path_factory.mktemp("parts")
    write_corpus(root / "photos", 6)
    assert main(["index", str(root / "photos"), "--index", str(root / "index"),
                 "--model", str(tiny_dirs["opt"]), "--workers", "0", "--no-ocr", "--json"]) == 0
    return root


SPY = """
import json, sys
import cli.common, cli.index
from cli.main import main
made = []
def spy(load):
    def wrapped(*args, **kwargs):
        made.append(load(*args, **kwargs))
        return made[-1]
    return wrapped
cli.common.load_engine = cli.index.load_engine = spy(cli.common.load_engine)
code = main(sys.argv[1:])
print(json.dumps({"code": code, "parts": [e.loaded for e in made], "torch": "torch" in sys.modules}))
"""


def _command(argv: list[str], index: Path) -> dict:
    """`blip2-search argv` in a process of its own: its exit code, the parts each engine it
    opened built, and whether it imported torch at all."""
    result = subprocess.run([sys.executable, "-c", SPY, *argv, "--index", str(index), "--json"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("argv", "parts"), [
    (["search", "a red circle", "-k", "3"], [["text"]]),
    (["search", "a red circle", "-k", "2", "--rerank"], [["text", "encoder", "retrieval"]]),
    (["ask", "1", "what color is the circle?"], [["encoder", "generation", "language_model"]]),
    (["similar", "--id", "2", "-k", "3"], []),
    (["search", "caption:circle"], []),
    (["browse"], []),
    (["stats"], []),
])
def test_each_command_builds_only_the_parts_it_uses(cli_index, argv, parts):
    ran = _command(argv, cli_index / "index")
    assert ran["code"] == 0
    assert ran["parts"] == parts
    assert ran["torch"] == bool(parts)  # a command that needs no model never imports torch


def test_index_without_captions_builds_no_language_model(cli_index, tiny_dirs):
    write_corpus(cli_index / "more", 2, seed=5)
    ran = _command(["index", str(cli_index / "more"), "--no-captions", "--no-ocr", "--workers", "0",
                    "--model", str(tiny_dirs["opt"])], cli_index / "index2")
    assert ran["parts"] == [["encoder", "retrieval"]]
