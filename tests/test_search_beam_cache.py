"""The preallocated beam-search cache holds exactly what transformers' dynamic cache holds."""

from __future__ import annotations

import os

import pytest
import torch
from transformers.cache_utils import DynamicCache

from search import runtime
from search.models.beam_cache import preallocated


def _filled(batch: int, length: int, seed: int) -> DynamicCache:
    generator = torch.Generator().manual_seed(seed)
    cache = DynamicCache()
    for layer in range(2):
        keys, values = (torch.randn(batch, 3, length, 4, generator=generator) for _ in range(2))
        cache.update(keys, values, layer)
    return cache


def test_updates_and_reorders_match_the_dynamic_cache():
    beams, capacity = 3, 9
    reference = _filled(2, 5, seed=0)
    reference.batch_repeat_interleave(beams)
    ours = preallocated(_filled(2, 5, seed=0), beams, capacity)
    generator = torch.Generator().manual_seed(1)
    for _step in range(capacity - 5):
        for layer in range(2):
            keys, values = (torch.randn(2 * beams, 3, 1, 4, generator=generator) for _ in range(2))
            expected = reference.update(keys, values, layer)
            got = ours.update(keys, values, layer)
            for a, b in zip(expected, got, strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=0)
        order = torch.randint(0, 2 * beams, (2 * beams,), generator=generator)
        reference.reorder_cache(order)
        ours.reorder_cache(order)
    assert ours.get_seq_length() == reference.get_seq_length() == capacity
    with pytest.raises(ValueError, match="holds 9 positions"):
        ours.update(keys, values, 0)


def test_runtime_sets_both_thread_pools():
    import faiss

    before = torch.get_num_threads()
    try:
        applied = runtime.configure(1)
        assert applied["threads"] == 1 and torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
        assert runtime.configure()["threads"] == runtime.cores() == len(os.sched_getaffinity(0))
    finally:
        runtime.configure(before)
