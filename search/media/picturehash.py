"""A 64-bit perceptual hash of a picture's layout (DCT pHash), and the distance between two.

The picture is shrunk to 32 x 32 and projected on its own main colour axis (the first
principal component of its pixels' colours: red on blue of the same grey still differ
there); the hash keeps the signs of the lowest 8 x 8 cosine frequencies of that channel
against their median. It survives resizing, re-encoding, a change of brightness or
contrast and a light crop, and changes when the same things are drawn elsewhere. An axis
has no sign, so a hash and its complement mean the same layout (`distance`). numpy and
Pillow only: decoding workers compute it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIDE = 32  # the grey picture the transform sees
KEPT = 8  # the lowest KEPT x KEPT frequencies make the hash
BITS = KEPT * KEPT


def _dct_matrix(n: int) -> np.ndarray:
    """(n, n): the orthonormal DCT-II, rows by frequency."""
    k, x = np.arange(n)[:, None], np.arange(n)[None, :]
    basis = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    basis[0] /= np.sqrt(2)
    return basis


_DCT = _dct_matrix(SIDE)[:KEPT]  # (8, 32)
_WEIGHTS = (1 << np.arange(BITS, dtype=np.uint64)).astype(np.uint64)


def picture_hash(image: Image.Image) -> int:
    """The picture's 64-bit pHash as a signed int64 (the catalog's column): bit i is set when
    frequency i (row-major over 8 x 8) is above the median of the 63 non-constant ones."""
    small = image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BOX)
    colours = np.asarray(small, dtype=np.float64).reshape(-1, 3)
    colours -= colours.mean(axis=0)
    axis = np.linalg.eigh(colours.T @ colours)[1][:, -1]  # (3,): the direction colours vary most
    channel = (colours @ axis).reshape(SIDE, SIDE)
    freq = _DCT @ channel @ _DCT.T  # (8, 8): the lowest frequencies, the constant one first
    flat = freq.ravel()
    bits = flat > np.median(flat[1:])
    bits[0] = False  # the constant term says only how bright the picture is
    return int(np.sum(_WEIGHTS[bits], dtype=np.uint64).astype(np.int64))


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bits that differ between the 64-bit hashes `a` and `b` (signed or unsigned; broadcast)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)).view(np.uint64)
    return np.bitwise_count(x).astype(np.int64)


def distance(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """How far apart two layouts are, 0 to 32: the Hamming distance between `a` and `b` or
    between `a` and `b`'s complement, whichever is less (a colour axis has no sign)."""
    bits = hamming(a, b)
    return np.minimum(bits, BITS - bits)
