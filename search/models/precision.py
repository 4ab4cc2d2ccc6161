"""The precision of each stage, and on a CPU the default measured on the machine itself.

Which precision is fastest on a CPU cannot be read from its feature flags. On an AMD EPYC
with AVX512-BF16, bfloat16 matmuls ran 4.5 times faster than float32 ones; on an Intel
Xeon with the same flag and no AMX they ran at half the speed of float32; with AMX, 30
times faster (BENCHMARKS.md). So `auto` times the image encoder's widest matmul in each
precision the CPU offers, once per process (about half a second), and picks from the figures:

- the models' weights: bfloat16 where its matmul is no slower than float32's, else float32;
- the image encoder: int8 weights (dynamic quantization, a scale per output channel, and
  a scale per token for the activations: `PerTokenLinear`) where that matmul runs at least
  1.5 times the chosen float one. It carries most of an indexing run's arithmetic (about
  520 GFLOP an image at ViT-g size); its vectors kept a cosine of 0.998 with float32's at
  real size and the demo model's retrieval recall unchanged. With one scale per tensor and
  7-bit activations (AVX2 without VNNI) the demo model's lowest cosine over 200 held-out
  images fell to 0.974, below the 0.99 a lower precision must keep; a scale per token
  brought it to 0.996 with the same 7 bits. Where int8 arithmetic does not pay, float32
  weights are kept in int8 all the same and widened as each layer runs
  (`WeightInt8Linear`): 1.0 GB instead of 3.9 at real size, float32's arithmetic;
- the language model: int8 weights on every CPU (`quantize_decoder_int8`).
"""

from __future__ import annotations

import copy
import functools
import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from ..config import Precision

INT8_ENCODER_GAIN = 1.5  # int8 must beat the float encoder by this much to be chosen
_PROBE = (257, 1408, 6144)  # one ViT-g image's tokens through the first layer of its MLP


@dataclass(frozen=True)
class Plan:
    """How each stage runs. `dtype`: the weights as loaded (float32, bfloat16, float16, or
    int8: every Linear layer, on a CPU); the flags add int8 weights to one stage (CPU):
    `encoder_int8` with int8 arithmetic, `encoder_weights_int8` with float32 arithmetic
    (`WeightInt8Linear`)."""

    dtype: str
    encoder_int8: bool = False
    decoder_int8: bool = False
    encoder_weights_int8: bool = False

    def describe(self) -> str:
        encoder = ("int8" if self.encoder_int8 else
                   f"int8 weights, {self.dtype} arithmetic" if self.encoder_weights_int8 else self.dtype)
        stages = [f"image encoder {encoder}", f"language model {'int8' if self.decoder_int8 else self.dtype}"]
        return f"{self.dtype} ({', '.join(stages)})"


def plan(device: torch.device, wanted: Precision, speeds: dict[str, float] | None = None) -> Plan:
    """The stages' precisions from the settings' `wanted` ones; `auto` is float16 on a GPU,
    and on a CPU the fastest of this machine's `speeds` (default: `cpu_speeds()`, measured
    once)."""
    dtype = default_dtype(device, speeds) if wanted.dtype == "auto" else wanted.dtype
    if device.type != "cpu" or dtype == "int8":
        return Plan(dtype)
    encoder = wanted.encoder == "int8" or (wanted.encoder == "auto" and int8_encoder_pays(dtype, speeds))
    weights = wanted.encoder == "int8-weights" or (wanted.encoder == "auto" and not encoder
                                                   and dtype == "float32")
    return Plan(dtype, encoder_int8=encoder, decoder_int8=wanted.decoder in ("auto", "int8"),
                encoder_weights_int8=weights)


def default_dtype(device: str | torch.device, speeds: dict[str, float] | None = None) -> str:
    """float16 on a GPU; on a CPU bfloat16 where its matmuls are no slower than float32's."""
    if torch.device(device).type == "cuda":
        return "float16"
    speeds = speeds if speeds is not None else cpu_speeds()
    return "bfloat16" if speeds.get("bfloat16", 0.0) >= speeds["float32"] else "float32"


def int8_encoder_pays(dtype: str, speeds: dict[str, float] | None = None) -> bool:
    speeds = speeds if speeds is not None else cpu_speeds()
    return speeds["int8"] >= INT8_ENCODER_GAIN * speeds.get(dtype, 0.0)


@functools.cache
def cpu_speeds() -> dict[str, float]:
    """GFLOP/s of `_PROBE` on this CPU in float32, int8 (dynamic, as `quantize_linear_int8`
    runs it) and, where the CPU has bfloat16 matmul instructions, bfloat16: best of three."""
    rows, width, out = _PROBE
    generator = torch.Generator().manual_seed(0)
    layer = nn.Linear(width, out, device="meta").to_empty(device="cpu").requires_grad_(False)
    layer.weight.normal_(0.0, 0.02, generator=generator)
    layer.bias.zero_()
    x = torch.randn(rows, width, generator=generator)
    speeds = {"float32": _rate(layer, x)}
    if {"avx512_bf16", "amx_bf16"} & cpu_flags():
        speeds["bfloat16"] = _rate(copy.deepcopy(layer).bfloat16(), x.bfloat16())
    quantized = nn.Sequential(layer)
    quantize_linear_int8(quantized)
    speeds["int8"] = _rate(quantized, x)
    return speeds


def _rate(layer: nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    flops = 2 * x.shape[0] * x.shape[1] * _PROBE[2]
    with torch.inference_mode():
        layer(x)  # warm up
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            layer(x)
            best = min(best, time.perf_counter() - started)
    return round(flops / best / 1e9, 1)


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as info:
            return set(next((line for line in info if line.startswith("flags")), "").split())
    except OSError:
        return set()


def quantize_cpu_int8(model: nn.Module) -> None:
    """Dynamic int8 quantization of every Linear layer, in place (CPU int8)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated but still the CPU path
        torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=True)


def quantize_linear_int8(module: nn.Module) -> None:
    """`module`'s Linear layers in float32 with int8 weights, a scale per output channel, in
    place (CPU); activations are quantized on the fly, a scale per token (`PerTokenLinear`),
    to all 8 bits where this CPU's int8 products are exact with them, else to 7."""
    module.float()
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    mapping = {nn.Linear: PerTokenLinear}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(module, {nn.Linear: qconfig}, dtype=torch.qint8,
                                               mapping=mapping, inplace=True)


class FullRangeLinear(DynamicLinear):
    """A dynamic int8 Linear layer whose activations use all 8 bits. torch keeps 7
    (`reduce_range`) for CPUs whose int8 dot products add pairs into saturating 16-bit sums
    (AVX2 without VNNI). With the demo model's image encoder in int8, over 500 held-out
    images: with 7 bits the image vectors' lowest cosine to float32's was 0.984 (one of 200
    others: 0.974), with 8 bits 0.993."""

    def _get_name(self) -> str:
        return "FullRangeDynamicQuantizedLinear"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params,
                                                  reduce_range=False).to(x.dtype)


class PerTokenLinear(FullRangeLinear):
    """A dynamic int8 Linear layer whose activations get a scale per token (row) rather than
    one per tensor: each row is divided by its largest magnitude before torch quantizes the
    tensor, and the product multiplied back, then the bias added (it is kept out of the
    int8 product for that). A few tokens of an image encoder carry activations tens of times
    larger than the rest, and one scale for all made every other token's steps as coarse as
    theirs. Activations keep all 8 bits where this CPU's int8 sums do not saturate with
    them, else 7. Its own passes over the activations (the largest magnitudes, the division,
    the scale and the bias put back) cost a few percent of the int8 product at ViT-g's
    widths (batch 8, 1408 to 6144: about 5 ms beside 140)."""

    def _get_name(self) -> str:
        return "PerTokenDynamicQuantizedLinear"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)  # packs a zero bias, if any: adding it changes nothing
        self.float_bias: torch.Tensor | None = None

    def set_weight_bias(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().set_weight_bias(weight, None)
        self.float_bias = None if bias is None else bias.detach().float().contiguous()

    def _weight_bias(self):
        weight, _ = super()._weight_bias()
        return weight, self.float_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.abs().amax(dim=-1, keepdim=True).clamp_(min=1e-12)  # 9 times vector_norm's speed here
        y = torch.ops.quantized.linear_dynamic(x / scale, self._packed_params._packed_params,
                                               reduce_range=not full_range_is_exact())
        y.mul_(scale)  # in place, then the bias: together 7 times faster than addcmul
        return (y if self.float_bias is None else y.add_(self.float_bias)).to(x.dtype)


@functools.cache
def full_range_is_exact() -> bool:
    """Whether full-range activations give this CPU's int8 Linear its float result where a
    16-bit sum would saturate: every activation at 255 against weights at 127."""
    layer = nn.Sequential(nn.Linear(256, 8, bias=False)).requires_grad_(False)
    layer[0].weight.fill_(0.5)
    x = torch.full((4, 256), 3.0)
    x[:, 0] = 0.0  # the range is [0, 3]: 3.0 quantizes to 255
    qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(layer, {nn.Linear: qconfig}, dtype=torch.qint8,
                                                           mapping={nn.Linear: FullRangeLinear})
    with torch.inference_mode():
        error = (quantized(x) - layer(x)).abs().max() / layer(x).abs().max()
    return bool(error < 0.01)


class WeightInt8Linear(nn.Module):
    """A Linear layer that keeps its weights in int8, a scale per output channel, and
    computes in the float dtype of its input: each weight is widened as the layer runs. A
    quarter of float32's memory (ViT-g: 1.0 GB instead of 3.9) at float32's accuracy (no
    activation is rounded) and nearly its speed: widening a layer's weights costs a pass
    over them, a batch of images a matmul over thousands of rows."""

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight_int8", weight)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", bias)

    @classmethod
    def from_float(cls, linear: nn.Linear) -> WeightInt8Linear:
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127
        values = torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8)
        bias = None if linear.bias is None else linear.bias.detach().float()
        return cls(values, scale, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_int8.to(x.dtype).mul_(self.scale.to(x.dtype)[:, None])
        return nn.functional.linear(x, weight, None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def quantize_weights_int8(module: nn.Module) -> None:
    """`module`'s Linear layers as `WeightInt8Linear`, in place; the rest in float32."""
    module.float()
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, WeightInt8Linear.from_float(child))
        else:
            quantize_weights_int8(child)


def quantize_decoder_int8(language_model: nn.Module) -> None:
    """The language model with int8 weights (`quantize_linear_int8`). Decoding reads every
    weight once a token for a handful of rows (the beams): there, int8 matmuls ran 3.6 to 5
    times faster than bfloat16 ones on a CPU without AMX (OPT-2.7b widths, 5 rows;
    BENCHMARKS.md), and its answers and captions agree with float32 on the demo model
    (`test_search_precision.py`)."""
    quantize_linear_int8(language_model)
