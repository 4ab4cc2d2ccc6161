"""Model specs, options and the offline behaviour of real presets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from search.config import Precision
from search.errors import ConfigError, ModelNotAvailable
from search.models import Blip2Engine
from search.presets import PRESETS, resolve
from tests.support.engines import FLOAT32


def test_presets_name_real_checkpoints():
    assert PRESETS["blip2-opt-2.7b"].retrieval == "Salesforce/blip2-itm-vit-g"
    assert PRESETS["blip2-opt-2.7b"].generation == "Salesforce/blip2-opt-2.7b"
    assert PRESETS["blip2-flan-t5-xl"].generation == "Salesforce/blip2-flan-t5-xl"
    assert not PRESETS["blip2-opt-6.7b"].local


def test_folder_resolves_to_its_checkpoints(tiny_dirs):
    source = resolve(str(tiny_dirs["opt"]))
    assert source.local
    assert Path(source.retrieval) == tiny_dirs["opt"].resolve() / "retrieval"


def test_unknown_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailable, match="unknown model 'nope'"):
        resolve("nope")
    (tmp_path / "retrieval").mkdir()
    with pytest.raises(ModelNotAvailable, match="no generation/"):
        resolve(str(tmp_path))
    (tmp_path / "generation").mkdir()
    with pytest.raises(ModelNotAvailable, match="has no config.json"):
        resolve(str(tmp_path))


def test_broken_checkpoint_is_a_clear_error(tmp_path, tiny_dirs):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_dirs["opt"], broken)
    (broken / "generation" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotAvailable, match="cannot load the checkpoint"):
        Blip2Engine.load(str(broken), device="cpu", precision=FLOAT32)


def test_bad_options(tiny_dirs):
    with pytest.raises(ConfigError, match="unknown dtype"):
        Blip2Engine.load(str(tiny_dirs["opt"]), precision=Precision(dtype="float8"))
    with pytest.raises(ConfigError, match="unknown device"):
        Blip2Engine.load(str(tiny_dirs["opt"]), device="tpu")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_a_gpu(tiny_dirs):
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        Blip2Engine.load(str(tiny_dirs["opt"]), device="cuda")


def test_offline_real_preset_is_one_line_exit_1(tmp_path, tiny_dirs):
    image = tmp_path / "x.png"
    shutil.copy(Path(__file__).parent / "data" / "red.png", image)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "caption", str(image), "--model", "blip2-opt-2.7b"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "huggingface-cli download Salesforce/blip2-itm-vit-g" in lines[0]
    assert "huggingface-cli download Salesforce/blip2-opt-2.7b" in lines[0]
    assert "--model demo" in lines[0]
    assert result.stdout == ""
