"""Exact scores from stored vectors: re-scoring a first stage's candidates, and the
image-to-image score of `similar`.

Stored vectors are float16 (what the catalog and the exact index hold); each part is
converted to float32 where it is scored, on the thread that read it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..store.vectors import Candidates

Each = Callable[[np.ndarray], np.ndarray]
# read(ids, each) -> (the ids that have stored vectors, ascending; `each` applied to every
# part of their (m, Q, D) vectors, results concatenated)
Read = Callable[[np.ndarray, Each], tuple[np.ndarray, np.ndarray]]


def max_sim(text: np.ndarray) -> Each:
    """(m, Q, D) -> (m,): the max over an image's vectors of the cosine with (D,) `text`."""
    text = np.asarray(text, dtype=np.float32)
    return lambda vectors: (vectors.astype(np.float32, copy=False) @ text).max(axis=1)


def image_similarity(query: np.ndarray) -> Each:
    """(m, Q, D) -> (m,): the mean over (Q', D) `query`'s vectors of the max cosine against
    each candidate's vectors."""
    query = np.asarray(query, dtype=np.float32)
    return lambda vectors: np.einsum("ncd,qd->ncq", vectors.astype(np.float32, copy=False),
                                     query).max(axis=1).mean(axis=1)


def combine(weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(m,): a query's score from its terms' (m, terms) scores. A + term adds weight x score;
    a - term subtracts weight x how much more the image scores on it than the median candidate
    does, never less than nothing: an image unlike the unwanted text gains no bonus for it,
    which a plain difference would give (on the demo model, `a circle - a red circle` over
    200 candidates put squares and stars first)."""
    wanted = weights > 0
    total = scores[:, wanted] @ weights[wanted]
    if len(scores) and not wanted.all():
        unwanted = scores[:, ~wanted]
        total += np.maximum(unwanted - np.median(unwanted, axis=0), 0) @ weights[~wanted]
    return total


def top(ids: np.ndarray, scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k best (id, score), by score descending then id ascending."""
    order = np.lexsort((ids, -scores))[:k]
    return [(int(ids[i]), float(scores[i])) for i in order]


def rescore(read: Read, text: np.ndarray, candidates: np.ndarray, k: int,
            chunk: int = 4096) -> list[tuple[int, float]]:
    """The exact top k of `candidates` by max-sim over their stored vectors."""
    ids, scores = [], []
    score = max_sim(text)
    for start in range(0, len(candidates), chunk):
        found, best = read(np.asarray(candidates[start : start + chunk]), score)
        ids.append(found)
        scores.append(best)
    if not ids:
        return []
    return top(np.concatenate(ids), np.concatenate(scores), k)


def ranked(first: Candidates, text: np.ndarray, k: int, read: Read) -> list[tuple[int, float]]:
    """A first stage's top k, exact: its own scores when it has them, else re-scored."""
    if first.exact:
        return [(int(i), float(s)) for i, s in zip(first.ids[:k], first.scores[:k], strict=True)]
    return rescore(read, text, first.ids, k)

