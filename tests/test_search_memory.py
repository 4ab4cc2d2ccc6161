"""Memory: tensors read and written without mapping their files, int8 weights computed in
float32, and indexing batches sized to a budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from search import memory
from search.models import precision
from search.models.tensorfile import TensorFile, write


def test_tensor_files_round_trip_one_tensor_at_a_time(tmp_path):
    tensors = {"a.weight": torch.randn(3, 5), "a.bias": torch.randn(5).bfloat16(),
               "ids": torch.arange(7), "flags": torch.tensor([True, False]), "empty": torch.zeros(0, 4),
               "int8": torch.randint(-127, 127, (4, 4), dtype=torch.int8)}
    write(tmp_path / "t.safetensors", iter(tensors.items()), {"kind": "test"}, count=len(tensors))
    stored = TensorFile(tmp_path / "t.safetensors")
    assert stored.metadata == {"kind": "test"} and stored.keys() == list(tensors)
    for name, tensor in tensors.items():
        assert torch.equal(stored.read(name), tensor) and stored.read(name).dtype == tensor.dtype
    from safetensors.torch import load_file  # the format's own reader agrees

    assert all(torch.equal(load_file(tmp_path / "t.safetensors")[name], t) for name, t in tensors.items())


def test_a_file_that_is_not_safetensors_is_refused(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a safetensors file"):
        TensorFile(tmp_path / "bad.safetensors")
    write(tmp_path / "cut.safetensors", iter({"w": torch.ones(1000)}.items()), {}, count=1)
    data = (tmp_path / "cut.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated"):
        TensorFile(tmp_path / "cut.safetensors").read("w")


def test_int8_weights_computed_in_float32_keep_a_layers_output():
    torch.manual_seed(0)
    layer = nn.Linear(256, 512)
    quantized = precision.WeightInt8Linear.from_float(layer)
    x = torch.randn(64, 256)
    with torch.no_grad():
        exact, close = layer(x), quantized(x)
    cosine = nn.functional.cosine_similarity(exact, close, dim=-1)
    assert cosine.min() > 0.9999
    assert quantized.weight_int8.dtype == torch.int8 and quantized.weight_int8.numel() == 256 * 512
    holder = nn.Sequential(nn.Linear(8, 8), nn.Sequential(nn.Linear(8, 4)))
    precision.quantize_weights_int8(holder)
    assert [type(m).__name__ for m in holder.modules() if not isinstance(m, nn.Sequential)] == [
        "WeightInt8Linear", "WeightInt8Linear"]


def test_the_default_budget_is_8_gb_or_half_the_machine():
    assert memory.memory_budget(total=64 * 10**9) == 8 * 10**9  # as `--max-memory 8` says
    assert memory.memory_budget(total=12 * 10**9) == 6 * 10**9
    assert memory.resident_memory() > 0


def test_indexing_batches_follow_the_budget(engines):
    """Sized once the parts an index run uses are built: no room left means batches of one;
    room for many, the most asked for."""
    engine = engines["opt"]
    engine.prepare(engine.index_parts())
    held = memory.resident_memory()
    assert engine.batch_size(budget=held // 2) == 1
    assert engine.batch_size(most=12, budget=held + (1 << 30)) == 12


def test_parts_past_the_default_budget_size_batches_from_free_memory(engines, monkeypatch):
    """No batch can keep a default budget the model's parts already pass (a precision chosen
    over the defaults): the batches follow the machine's free memory, not one image each;
    a budget given (`--max-memory`) still holds them to one."""
    engine = engines["opt"]
    engine.prepare(engine.index_parts())
    held = memory.resident_memory()
    monkeypatch.setattr(memory, "memory_budget", lambda total=None: held // 2)
    assert engine.batch_size(most=12) == 12
    assert engine.batch_size(most=12, budget=held // 2) == 1
    assert engine.batch_size(most=12, budget=held + (1 << 30), captions=False) == 12
    assert set(engine.loaded) >= {"encoder", "retrieval", "generation", "language_model"}


def test_int8_weight_stages_are_cached_too(tiny_dirs, images, tmp_path):
    from dataclasses import replace

    from search.models import Blip2Engine
    from tests.support.engines import EXACT

    wanted = replace(EXACT, encoder="int8-weights")
    first = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=wanted, cache=tmp_path)
    vectors = first.embed_images(images[:2])
    assert first.precision.encoder_weights_int8 and not first.precision.encoder_int8
    second = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=wanted, cache=tmp_path)
    assert (tmp_path / "int8").is_dir()
    np.testing.assert_array_equal(second.embed_images(images[:2]), vectors)
    kinds = {type(m).__name__ for m in second.parts.modules("encoder")}
    assert "WeightInt8Linear" in kinds and "Linear" not in kinds
