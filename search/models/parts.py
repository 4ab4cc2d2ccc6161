"""The parts of a BLIP-2 pair, each built on first use, in the precision it runs in:

    text                the Q-Former's text side: embeddings, Q-Former, text projection (queries)
    encoder             the image encoder (ViT) without its final LayerNorm; both stages' when
                        they share it
    generation_encoder  the generation stage's own encoder, when they do not
    retrieval           its LayerNorm, query tokens, Q-Former, vision projection, match head
    generation          its LayerNorm, query tokens, Q-Former, language projection
    language_model      the decoder (OPT, Flan-T5)

A text search builds `text` alone; a similar by id nothing; a rerank from stored features
`retrieval`; an index run what its options need. `CheckpointSource` builds a part from the
checkpoints' safetensors (`reading`); `PairSource` takes it from a pair already loaded (the
benchmarks' random real-size models).
"""

from __future__ import annotations

import copy
import gc
import threading
from types import SimpleNamespace

import torch
from torch import nn

from .. import memory
from . import layout, precision
from .loading import DTYPES, LoadedPair
from .precision import Plan
from .vision import encoder_fingerprint

NAMES = ("text", "encoder", "generation_encoder", "retrieval", "generation", "language_model")


def float_dtype(plan: Plan) -> torch.dtype:
    """The dtype of a stage's float weights: int8 stages keep theirs in float32."""
    return torch.float32 if plan.dtype == "int8" else DTYPES[plan.dtype]


class Parts:
    """The parts of one engine: built once each, on first use, one at a time."""

    def __init__(self, source) -> None:
        self.source = source
        self._built: dict[str, object] = {}
        self._lock = threading.RLock()

    def __getitem__(self, name: str):
        if name not in self._built:
            with self._lock:
                if name not in self._built:
                    with torch.inference_mode(False):  # inference-mode weights refuse autograd (explain)
                        self._built[name] = getattr(self.source, name)()
                    gc.collect()  # the float layers an int8 stage replaced sit in reference cycles
                    memory.trim_memory()
        return self._built[name]

    @property
    def loaded(self) -> list[str]:
        return [name for name in NAMES if name in self._built]

    def modules(self, name: str) -> list[nn.Module]:
        """Every module of the part `name` (built if it is not yet)."""
        part = self[name]
        roots = [part] if isinstance(part, nn.Module) else [
            module for module in vars(part).values() if isinstance(module, nn.Module)]
        return [module for root in roots for module in root.modules()]


class PairSource:
    """Parts taken from a pair of models already loaded (`LoadedPair`), made to the plan."""

    def __init__(self, pair: LoadedPair, plan: Plan, query_dtype: torch.dtype | None) -> None:
        self.pair, self.plan, self.device, self.query_dtype = pair, plan, pair.device, query_dtype
        self.configs = (pair.retrieval.config, pair.generation.config)
        self.float_dtype = pair.retrieval.vision_model.post_layernorm.weight.dtype
        # hashed before a part quantizes either encoder in place
        ret, gen = pair.retrieval.vision_model, pair.generation.vision_model
        self._same_encoder = ret is gen or encoder_fingerprint(ret) == encoder_fingerprint(gen)

    def processor(self, side: str):
        return self.pair.retrieval_processor if side == "retrieval" else self.pair.generation_processor

    def same_encoder(self) -> bool:
        return self._same_encoder

    def text(self) -> SimpleNamespace:
        ret = self.pair.retrieval
        side = SimpleNamespace(embeddings=ret.embeddings, qformer=ret.qformer,
                               text_projection=ret.text_projection)
        if self.query_dtype is not None:  # a copy: the image side keeps the model's own
            side = SimpleNamespace(**{name: copy.deepcopy(module).to(self.query_dtype)
                                      for name, module in vars(side).items()})
        elif self.plan.dtype == "int8" and self.device.type == "cpu":
            quantize_side(side)
        return side

    def encoder(self, model=None) -> SimpleNamespace:
        vision = (model or self.pair.retrieval).vision_model
        if self.device.type == "cpu" and self.plan.dtype == "int8":
            precision.quantize_cpu_int8(vision.encoder)
        elif self.device.type == "cpu" and self.plan.encoder_int8:
            precision.quantize_linear_int8(vision.encoder)
        elif self.device.type == "cpu" and self.plan.encoder_weights_int8:
            precision.quantize_weights_int8(vision.encoder)
        return SimpleNamespace(embeddings=vision.embeddings, encoder=vision.encoder)

    def generation_encoder(self) -> SimpleNamespace:
        return self.encoder(self.pair.generation)

    def retrieval(self) -> SimpleNamespace:
        ret = self.pair.retrieval
        return self._stage(SimpleNamespace(
            post_layernorm=ret.vision_model.post_layernorm, query_tokens=ret.query_tokens,
            qformer=ret.qformer, embeddings=ret.embeddings, vision_projection=ret.vision_projection,
            itm_head=ret.itm_head))

    def generation(self) -> SimpleNamespace:
        gen = self.pair.generation
        return self._stage(SimpleNamespace(
            post_layernorm=gen.vision_model.post_layernorm, query_tokens=gen.query_tokens,
            qformer=gen.qformer, language_projection=gen.language_projection))

    def language_model(self) -> nn.Module:
        model = self.pair.generation.language_model
        if self.device.type == "cpu" and self.plan.dtype == "int8":
            precision.quantize_cpu_int8(model)
        elif self.device.type == "cpu" and self.plan.decoder_int8:
            precision.quantize_decoder_int8(model)
        layout.contiguous_head(model)
        return model

    def _stage(self, side: SimpleNamespace) -> SimpleNamespace:
        if self.plan.dtype == "int8" and self.device.type == "cpu":
            quantize_side(side)
        layout.contiguous_slices(side.qformer)
        return side


def quantize_side(side: SimpleNamespace) -> None:
    """Every Linear layer of a part's modules in int8 (the int8 plan, on a CPU), a module that
    is itself one included; the LayerNorm on the encoder output stays as it is."""
    for name, module in vars(side).items():
        if isinstance(module, nn.Module) and name != "post_layernorm":
            holder = nn.Sequential(module)  # quantize_dynamic replaces children, never its root
            precision.quantize_cpu_int8(holder)
            setattr(side, name, holder[0])
