"""An int8 copy of the exact index's rows: the first stage of similar images.

Similar by id on the exact kind scores every image: the mean over the query image's 32
vectors of the max cosine against each image's 32 rows, one (rows x 32) product. At 10,000
images that is 5.2 GFLOP, 58 to 75 ms in float32 on 2 cores of an AVX2 EPYC (BENCHMARKS.md).
The same product on uint8 rows and int8 query vectors (fbgemm's static int8 linear) took
22 ms there, the max over each image's rows 4 ms more, and its error (rows quantized per
slice, scores to 8 bits over the range the vectors' norms allow) is far below the gap between
an image's rank and the pool's: so the int8 product proposes the best `pool` images, and
their float32 rows score them exactly. Recall@10 was 1.0 against the exact scan with a pool
of 512 at 10,000 and 20,000 images, uniform and clustered (`benchmarks/query.py`).

fbgemm is x86's quantized engine; elsewhere (`available()` false) the float32 product is used.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch


def available() -> bool:
    return torch.backends.quantized.engine in ("x86", "fbgemm")


class Int8Rows:
    """uint8 copies of (image ids (n,), float32 rows (n * Q, D)) blocks, with the rows."""

    def __init__(self, blocks: list[tuple[np.ndarray, np.ndarray]], queries: int, owner: object) -> None:
        self.queries, self.owner = queries, owner  # the owner keeps the rows' memory alive
        self.blocks = [(ids, rows) for ids, rows in blocks if len(ids)]
        self.norm = max((float(np.sqrt((rows * rows).sum(1).max())) for _, rows in self.blocks), default=1.0)
        with warnings.catch_warnings():  # quantized tensors are deprecated, fbgemm's ops are not
            warnings.simplefilter("ignore", UserWarning)
            self.quantized = [_quantized(rows, 128, torch.quint8) for _, rows in self.blocks]

    def best(self, query: np.ndarray, pool: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, scores) of the `pool` images the int8 product ranks first for the (Q', D)
        `query`, each scored exactly from its float32 rows."""
        query = np.ascontiguousarray(query, dtype=np.float32)
        bound = self.norm * float(np.sqrt((query * query).sum(1).max())) or 1.0  # |any score| <= bound
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore", UserWarning)
            packed = torch.ops.quantized.linear_prepack(_quantized(query, 0, torch.qint8), None)
            every = np.concatenate([self._first(rows, packed, bound, len(query)) for rows in self.quantized])
            pool = min(pool, len(every))
            chosen = np.sort(np.argpartition(-every, pool - 1)[:pool])
            starts = np.cumsum([0] + [len(found) for found, _ in self.blocks])
            exact = torch.from_numpy(query)
            ids, scores = [], []
            for block, (found, rows) in enumerate(self.blocks):
                images = chosen[(chosen >= starts[block]) & (chosen < starts[block + 1])] - starts[block]
                # in torch, as the first stage: numpy's BLAS threads, still spinning, slowed
                # torch's next product by half
                vectors = torch.from_numpy(rows).view(len(found), self.queries, -1)[torch.from_numpy(images)]
                scores.append((vectors @ exact.T).amax(1).mean(1).numpy())
                ids.append(found[images])
        return np.concatenate(ids), np.concatenate(scores)

    def _first(self, rows: torch.Tensor, packed, bound: float, width: int) -> np.ndarray:
        """(n,) int32: each image's sum over the query's vectors of its best row, in 8-bit
        steps of the scores' range (the quantization keeps order, so the max is the max)."""
        scores = torch.ops.quantized.linear(rows, packed, bound / 127.5, 128)  # (n * Q, Q') quint8
        best = _max_over_rows(scores.int_repr().view(-1, self.queries, width))  # (n, Q')
        return best.sum(1, dtype=torch.int32).numpy()


def _max_over_rows(scores: torch.Tensor) -> torch.Tensor:
    """(n, Q, Q') -> (n, Q'): the max over dimension 1 as halves compared elementwise, 0.6 ms
    for 10,000 images where `amax(1)` took 7.7 (a reduction over a middle dimension). Halves
    of an odd count overlap by one, which a max does not mind."""
    while scores.shape[1] > 1:
        half = (scores.shape[1] + 1) // 2
        scores = torch.maximum(scores[:, :half], scores[:, scores.shape[1] - half :])
    return scores[:, 0]


def _quantized(values: np.ndarray, zero: int, dtype: torch.dtype) -> torch.Tensor:
    """One scale for all of `values`, its largest magnitude at 127 steps."""
    scale = max(float(np.abs(values).max()), 1e-12) / 127
    return torch.quantize_per_tensor(torch.from_numpy(values), scale, zero, dtype)
