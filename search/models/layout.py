"""Contiguous inputs for Linear layers that transformers hands strided views.

On a 3-D view that is not contiguous, torch's matmul cannot fold the batch into rows: it
copies the weight once per batch item and runs a batched matmul. transformers' BLIP-2 does
this in two places that matter on a CPU (profiled at real size, bfloat16, 2 cores;
BENCHMARKS.md has the figures):
- the Q-Former beside text (the match head) slices each layer's hidden states into queries
  and text: the weight copies took 1.0 s of the 1.7 s a rerank of 20 spent in it;
- the language model's prompt pass keeps only its last position for the head
  (`logits_to_keep=1`): the vocabulary projection (50,272 x 2,560) was copied once per
  image, 0.5 to 0.9 s for one question, and for a batch of 27 captions at float32, 14 GB.
A contiguous copy of the slice costs microseconds. Values are unchanged.
"""

from __future__ import annotations

import torch

MARK = "_contiguous_inputs"


def contiguous_slices(qformer: torch.nn.Module) -> None:
    """Each Q-Former layer's feed-forward and cross-attention."""
    if getattr(qformer, MARK, False):
        return
    for layer in qformer.encoder.layer:
        for name in ("intermediate", "intermediate_query"):
            if hasattr(layer, name):
                getattr(layer, name).register_forward_pre_hook(_contiguous_args)
        if getattr(layer, "has_cross_attention", False):
            layer.crossattention.register_forward_pre_hook(_contiguous_kwargs, with_kwargs=True)
    setattr(qformer, MARK, True)


def contiguous_head(language_model: torch.nn.Module) -> None:
    """The language model's vocabulary projection."""
    head = language_model.get_output_embeddings()
    if head is not None and not getattr(head, MARK, False):
        head.register_forward_pre_hook(_contiguous_args)
        setattr(head, MARK, True)


def standard(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` with the strides of a fresh one. `contiguous()` alone is not enough: a
    (1, 1, H) slice of a (1, T, H) tensor counts as contiguous (size-1 dimensions are not
    checked) but keeps the stride T x H, and matmul then takes the weight-copying path."""
    return tensor.contiguous().view(tensor.shape)


def _contiguous_args(module, args):
    return tuple(standard(arg) if isinstance(arg, torch.Tensor) else arg for arg in args)


def _contiguous_kwargs(module, args, kwargs):
    hidden = kwargs.get("hidden_states")
    if isinstance(hidden, torch.Tensor):
        kwargs["hidden_states"] = standard(hidden)
    return _contiguous_args(module, args), kwargs
