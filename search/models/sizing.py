"""How many images an indexing batch holds, from the memory the process may use.

Functions of the engine (`Blip2Engine.batch_size`, `Blip2Engine.index_parts`).
"""

from __future__ import annotations

import torch

from .. import memory
from . import generation, vision
from .loading import free_memory


def batch_size(self, most: int = 32, share: float = 0.7, free: int | None = None, *,
               budget: int | None = None, captions: bool = True) -> int:
    """Images an indexing batch should hold: as many as `share` of the `free` memory
    takes, each image its captions' beam search (`generation.memory_per_image`) or,
    without captions, its encoder activations, up to `most`. Taller batches keep the
    decoder's matmuls nearer the machine's peak (BENCHMARKS.md has the figures). `free`
    by default, on a CPU: the `budget` (`memory.memory_budget()` by default) less what
    the process holds once the parts an index run uses are built, and never more than
    the machine has free; on a GPU, its free memory. Where those parts alone hold more
    than the default budget (a precision chosen over the CPU defaults: float32 at real
    size holds 15 GB), no batch can keep it, and with no `budget` given the batches take
    their share of what the machine has free instead of one image each."""
    if free is None:
        free = free_memory(self.device)
        if self.device.type == "cpu":
            self.prepare(self.index_parts(captions))
            held, default = memory.resident_memory(), memory.memory_budget()
            if budget is not None or held < default:
                free = min(free, (budget or default) - held)
    if captions:
        int8 = self.device.type == "cpu" and (self.precision.dtype == "int8" or self.precision.decoder_int8)
        lm_dtype = torch.float32 if int8 else self._float  # an int8 decoder computes in float32
        per_image = generation.memory_per_image(self._gen_config, lm_dtype, self.caption_decoding)
    else:
        per_image = vision.memory_per_image(self._ret_config.vision_config, torch.float32)
    return max(1, min(most, int(max(free, 0) * share) // per_image))


def index_parts(self, captions: bool = True) -> list[str]:
    """The parts an index run uses: the encoder and the match side, and for captions the
    generation side and the language model (with its own encoder where not shared)."""
    if not captions:
        return ["encoder", "retrieval"]
    extra = ["generation_encoder"] if self.encoder_mode == "separate" else []
    return ["encoder", "retrieval", *extra, "generation", "language_model"]
