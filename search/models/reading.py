"""Parts read from a (retrieval, generation) pair of checkpoints (`Checkpoint`): each built
with its parameters on the meta device, then filled from the safetensors files one tensor at
a time in the precision it runs in. An int8 stage is read and quantized layer by layer, then
cached (`int8cache`): no stage ever holds a float copy of itself beside its int8 one.
`open_source` is what `Blip2Engine.load` builds its parts from.
"""

from __future__ import annotations

import contextlib
import gc
import re
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, Blip2QFormerModel, Blip2VisionModel
from transformers.models.blip_2.modeling_blip_2 import Blip2TextEmbeddings

from .. import memory
from ..config import Precision
from ..presets import ModelSource
from . import layout, precision
from .checkpoint import Checkpoint, parameters_on_meta
from .int8cache import Int8Cache, cache_key
from .loading import check_reachable, load_pair, quiet_hf
from .parts import PairSource, float_dtype, quantize_side
from .precision import Plan

KEEP_FLOAT32 = {"query_tokens", "qformer"}  # under float16, as transformers keeps them
QUERY_ONLY = ("crossattention", "intermediate_query", "output_query")  # Q-Former modules text never runs


def open_source(source: ModelSource, device: torch.device, wanted: Precision, plan: Plan,
                cache: Path | None) -> CheckpointSource | PairSource:
    """What builds the parts of `source`'s pair: its checkpoints (configs and tensor indexes
    read, no weights), or on a GPU with int8 asked for, the models loaded whole (bitsandbytes
    quantizes as it loads)."""
    query_dtype = query_precision(wanted, plan, device)
    if device.type == "cuda" and plan.dtype == "int8":
        return PairSource(load_pair(source, device=str(device), dtype=plan.dtype), plan, query_dtype)
    check_reachable(source)
    with quiet_hf():
        retrieval = Checkpoint.locate(source.retrieval, source)
        generation = Checkpoint.locate(source.generation, source)
    return CheckpointSource(retrieval, generation, plan, device, query_dtype, cache)


def query_precision(wanted: Precision, plan: Plan, device: torch.device) -> torch.dtype | None:
    """A text query reads every weight of the Q-Former's text side for a few tokens, so its
    time is bound by memory: a bfloat16 copy of that side halves it where the CPU has
    bfloat16 matmul instructions. Without them torch widens every bfloat16 weight as it
    multiplies: on an AVX2 EPYC the real-size text side took 94 ms a query in bfloat16, 58 in
    float32. So `auto` takes bfloat16 on a CPU with those instructions only. Its vectors agree
    with float32 to a cosine of 0.9999. None: the model's own precision."""
    fast = wanted.query == "bfloat16" or (
        wanted.query == "auto" and plan.dtype == "float32" and device.type == "cpu"
        and bool({"avx512_bf16", "amx_bf16"} & precision.cpu_flags()))
    return torch.bfloat16 if fast else None


class CheckpointSource:
    """Parts read from a (retrieval, generation) pair of checkpoints. `cache`: the folder of
    derived weights (int8 stages, encoder fingerprints); None keeps nothing."""

    def __init__(self, retrieval: Checkpoint, generation: Checkpoint, plan: Plan, device: torch.device,
                 query_dtype: torch.dtype | None, cache: Path | None = None) -> None:
        self.retrieval_checkpoint, self.generation_checkpoint = retrieval, generation
        self.plan, self.device, self.query_dtype, self.cache = plan, device, query_dtype, cache
        self.configs = (retrieval.config, generation.config)
        self.float_dtype = float_dtype(plan)

    def processor(self, side: str):
        """The side's tokenizer and image processor (read when first asked for)."""
        ckpt = self.retrieval_checkpoint if side == "retrieval" else self.generation_checkpoint
        with quiet_hf():
            return ckpt.processor()

    def same_encoder(self) -> bool:
        """Both checkpoints hold the same encoder weights (their final LayerNorms aside): a
        hash of each, kept beside the int8 stages so that it is read once."""
        pair = (self.retrieval_checkpoint, self.generation_checkpoint)
        return len({self._fingerprint(ckpt) for ckpt in pair}) == 1

    def text(self) -> SimpleNamespace:
        """What a text query runs: the Q-Former's layers without their cross-attention and
        the queries' feed-forward (a text query uses neither: those weights stay unread)."""
        ckpt, config = self.retrieval_checkpoint, self.retrieval_checkpoint.config
        with parameters_on_meta():
            side = SimpleNamespace(embeddings=Blip2TextEmbeddings(config.qformer_config),
                                   qformer=Blip2QFormerModel._from_config(config.qformer_config),
                                   text_projection=nn.Linear(config.qformer_config.hidden_size,
                                                             config.image_text_hidden_size))
        for layer in side.qformer.encoder.layer:
            for name in QUERY_ONLY:
                if hasattr(layer, name):
                    delattr(layer, name)
        own = self.query_dtype is None  # the model's own text side keeps its Q-Former in float32
        dtype = self.query_dtype or self.float_dtype
        for name, module in vars(side).items():
            ckpt.materialize(module, f"{name}.",
                             lambda param, part=name: _dtype(part, dtype) if own else dtype)
        return self._finish(side, quantize_all=self.plan.dtype == "int8" and own)

    def encoder(self, checkpoint: Checkpoint | None = None) -> SimpleNamespace:
        ckpt = checkpoint or self.retrieval_checkpoint
        with parameters_on_meta():
            vision = Blip2VisionModel._from_config(ckpt.config.vision_config)
        ckpt.materialize(vision.embeddings, "vision_model.embeddings.", lambda name: self.float_dtype)
        quantize = self._int8(self.plan.encoder_int8)
        if quantize is None and self.plan.encoder_weights_int8 and self.device.type == "cpu":
            quantize = precision.quantize_weights_int8
        if quantize is None:
            ckpt.materialize(vision.encoder, "vision_model.encoder.", lambda name: self.float_dtype)
        else:
            self._int8_stage(ckpt, vision.encoder, "vision_model.encoder.", "encoder", quantize)
        return SimpleNamespace(embeddings=vision.embeddings.eval().to(self.device),
                               encoder=vision.encoder.eval().to(self.device))

    def generation_encoder(self) -> SimpleNamespace:
        return self.encoder(self.generation_checkpoint)

    def retrieval(self) -> SimpleNamespace:
        ckpt, config = self.retrieval_checkpoint, self.retrieval_checkpoint.config
        hidden = config.qformer_config.hidden_size
        with parameters_on_meta():
            side = SimpleNamespace(
                post_layernorm=_post_layernorm(config),
                qformer=Blip2QFormerModel._from_config(config.qformer_config),
                embeddings=Blip2TextEmbeddings(config.qformer_config),
                vision_projection=nn.Linear(hidden, config.image_text_hidden_size),
                itm_head=nn.Linear(hidden, 2))
        return self._stage(ckpt, side)

    def generation(self) -> SimpleNamespace:
        ckpt, config = self.generation_checkpoint, self.generation_checkpoint.config
        with parameters_on_meta():
            side = SimpleNamespace(
                post_layernorm=_post_layernorm(config),
                qformer=Blip2QFormerModel._from_config(config.qformer_config),
                language_projection=nn.Linear(config.qformer_config.hidden_size,
                                              config.text_config.hidden_size))
        return self._stage(ckpt, side)

    def language_model(self) -> nn.Module:
        ckpt, config = self.generation_checkpoint, self.generation_checkpoint.config
        auto = AutoModelForSeq2SeqLM if config.text_config.is_encoder_decoder else AutoModelForCausalLM
        with parameters_on_meta():
            model = auto.from_config(config.text_config)
        model.tie_weights()  # the head shares the input embeddings' weight where the config says so
        quantize = self._int8(self.plan.decoder_int8)
        if quantize is None:
            dtypes = _kept_float32(model._keep_in_fp32_modules, self.float_dtype)
            ckpt.materialize(model, "language_model.", dtypes)
        else:
            self._int8_stage(ckpt, model, "language_model.", "language_model", quantize)
        model.eval().requires_grad_(False).to(self.device)
        layout.contiguous_head(model)
        return model

    # -- internals ----------------------------------------------------------------------------

    def _int8(self, stage_flag: bool):
        """The quantizer for a stage that runs in int8 on this CPU, else None."""
        if self.device.type != "cpu":
            return None
        if self.plan.dtype == "int8":
            return precision.quantize_cpu_int8
        return precision.quantize_linear_int8 if stage_flag else None

    def _int8_stage(self, ckpt: Checkpoint, module: nn.Module, prefix: str, stage: str, quantize) -> None:
        """An int8 stage from the cache, else read and quantized layer by layer (each layer's
        float weights freed before the next is read) and then cached. Weights pass through
        the plan's float dtype first, as when a whole model loaded in it is quantized. What
        lies outside the layers (embeddings, LayerNorms, an LM head) is read, then quantized
        last; it runs in float32."""
        cache = Int8Cache(self.cache and self.cache / "int8", cache_key(ckpt.identity, self.plan.describe()))
        if cache.restore(stage, module):
            ckpt.materialize(module, prefix, lambda name: self.float_dtype)
            module.float()
            return
        _layer_by_layer(ckpt, module, prefix, self.float_dtype, quantize)
        ckpt.materialize(module, prefix, lambda name: self.float_dtype)
        quantize(module)
        module.float()
        cache.save(stage, module)

    def _fingerprint(self, ckpt: Checkpoint) -> str:
        kept = self.cache and self.cache / "encoders" / f"{ckpt.identity}.txt"
        if kept and kept.is_file():
            return kept.read_text().strip()
        value = ckpt.fingerprint("vision_model.", "post_layernorm.")
        if kept:
            with contextlib.suppress(OSError):
                kept.parent.mkdir(parents=True, exist_ok=True)
                kept.write_text(value)
        return value

    def _stage(self, ckpt: Checkpoint, side: SimpleNamespace) -> SimpleNamespace:
        """A stage's modules read from the checkpoint, and its query tokens (a bare parameter)."""
        for name, module in vars(side).items():
            prefix = "vision_model.post_layernorm." if name == "post_layernorm" else f"{name}."
            ckpt.materialize(module, prefix, lambda param, part=name: _dtype(part, self.float_dtype))
        layout.contiguous_slices(side.qformer)
        side = self._finish(side, quantize_all=self.plan.dtype == "int8")
        tokens = ckpt.read("query_tokens").to(self.device, _dtype("query_tokens", self.float_dtype))
        side.query_tokens = nn.Parameter(tokens, requires_grad=False)
        return side

    def _finish(self, side: SimpleNamespace, *, quantize_all: bool) -> SimpleNamespace:
        for module in vars(side).values():
            module.eval().requires_grad_(False).to(self.device)
        if quantize_all and self.device.type == "cpu":
            quantize_side(side)
        return side


def _post_layernorm(config) -> nn.LayerNorm:
    vision = config.vision_config
    return nn.LayerNorm(vision.hidden_size, eps=vision.layer_norm_eps)


def _dtype(part: str, dtype: torch.dtype) -> torch.dtype:
    """A part's dtype as `from_pretrained` gives it: the Q-Former and the query tokens stay in
    float32 under float16 (`_keep_in_fp32_modules`), not under bfloat16."""
    return torch.float32 if part in KEEP_FLOAT32 and dtype == torch.float16 else dtype


def _kept_float32(keep: set[str] | list[str] | None, dtype: torch.dtype):
    """Per parameter name, the dtype of a model whose `keep` modules stay in float32 under
    float16 (T5's `wo`), as `from_pretrained` does."""
    pattern = re.compile("|".join(rf"(^|\.){re.escape(name)}($|\.)" for name in keep or ()) or "$^")
    return lambda name: torch.float32 if dtype == torch.float16 and pattern.search(name) else dtype


def _layer_by_layer(ckpt: Checkpoint, module: nn.Module, prefix: str, dtype: torch.dtype, quantize) -> None:
    """Every layer of `module`'s layer lists read in `dtype` and quantized before the next."""
    for name, child in module.named_modules():
        if not isinstance(child, nn.ModuleList):
            continue
        for index, layer in enumerate(child):
            ckpt.materialize(layer, f"{prefix}{name}.{index}.", lambda param: dtype)
            quantize(layer)
            gc.collect()  # torch.ao's swap leaves the float layers it replaced in reference cycles
            memory.trim_memory()
