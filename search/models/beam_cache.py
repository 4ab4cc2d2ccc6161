"""A key/value cache for beam search that never reallocates.

Profiled on the CPU (OPT-2.7b widths, 80 sequences, float32; BENCHMARKS.md), transformers'
dynamic cache spent much of decoding copying memory: each step concatenates the new keys
onto a fresh tensor, and each beam reorder `index_select`s into another fresh one, and on
glibc every fresh tensor that large is new pages from the kernel. Here each layer holds its keys and
values in buffers of the final length, allocated once: a step writes its token in place,
and a reorder gathers into a spare buffer of the same size, which then swaps in. The
attention reads a view of the filled part.

The layers share one spare pair: a reorder visits the layers in turn, and the buffers a
layer gives up become the spare of the next, so the cache costs one layer more than its
contents, not twice them (at 32 images, 5 beams and OPT-2.7b widths in float32: 5 GB, not 10).
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class Spare:
    """Key and value buffers lent to whichever layer reorders next."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def swap(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Take `keys` and `values` as the new spare; return the previous one (made to their
        shape when there is none yet, or it does not fit)."""
        if self.keys is None or self.keys.shape != keys.shape or self.keys.dtype != keys.dtype:
            self.keys, self.values = torch.empty_like(keys), torch.empty_like(values)
        (spare_keys, spare_values), (self.keys, self.values) = (self.keys, self.values), (keys, values)
        return spare_keys, spare_values


class PreallocatedLayer(DynamicLayer):
    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int, spare: Spare | None = None,
                 repeats: int = 1):
        """`keys` and `values` (rows, heads, length, head width), each row `repeats` times."""
        super().__init__()
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        rows, *middle, self._length, width = keys.shape
        shape = (rows * repeats, *middle, capacity, width)
        self._keys, self._values = keys.new_empty(shape), values.new_empty(shape)
        self._spare = spare or Spare()
        for buffer, given in ((self._keys, keys), (self._values, values)):  # broadcast: no repeated copy
            buffer.view(rows, repeats, *shape[1:])[..., : self._length, :] = given.unsqueeze(1)
        self._expose()

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self._length + key_states.shape[-2]
        if end > self._keys.shape[-2]:
            raise ValueError(f"the cache holds {self._keys.shape[-2]} positions, not {end}")
        self._keys[..., self._length : end, :] = key_states
        self._values[..., self._length : end, :] = value_states
        self._length = end
        self._expose()
        return self.keys, self.values

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        beam_idx = beam_idx.to(self.device)
        keys, values = self._spare.swap(self._keys, self._values)
        torch.index_select(self._keys, 0, beam_idx, out=keys)
        torch.index_select(self._values, 0, beam_idx, out=values)
        self._keys, self._values = keys, values
        self._expose()

    def _expose(self) -> None:
        self.keys = self._keys[..., : self._length, :]
        self.values = self._values[..., : self._length, :]


def preallocated(cache: DynamicCache, repeats: int, capacity: int) -> DynamicCache:
    """`cache` (a prompt's, one row per prompt) copied `repeats` times per row, as beam search
    wants it, into layers with room for `capacity` positions and one shared spare."""
    spare = Spare()
    for i, layer in enumerate(cache.layers):
        cache.layers[i] = PreallocatedLayer(layer.keys, layer.values, capacity, spare, repeats)
    return cache
