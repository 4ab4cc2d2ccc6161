"""How the engine runs model work: one thread at a time, in inference mode, and tensors back
to numpy."""

from __future__ import annotations

import functools

import numpy as np
import torch


def model_work(method):
    """Inference mode, one thread at a time: the engine may be shared by a server's request
    threads and an indexing job, and HF fast tokenizers must not be used by two at once."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock, torch.inference_mode():
            return method(self, *args, **kwargs)

    return locked


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.float().cpu().numpy()
