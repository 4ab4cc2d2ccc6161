"""Stored image features: the image encoder's output, kept compact so that the match head
(a rerank, a cutoff) and `ask` can skip the encoder, the costly part of both.

What is kept is the encoder output before each stage's own `post_layernorm`
(`models.vision`): one tensor when the two stages share the encoder ("shared"), else one a
stage ("retrieval", "generation"). ViT-g gives (257, 1408) a side.

It is stored as int8 with two scales: a factor a channel (a ViT's hidden states carry a few
channels tens of times larger than the rest; on their own scale they cost the others no
precision) and, after dividing by it, an absolute maximum a token. Bytes an image and side:
N x H + 2 (N + H), 365,186 for ViT-g (float16 would take twice that). Match probabilities
computed from it stay within 0.01 of the full-precision ones (BENCHMARKS.md has the
figures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KEYS = ("shared", "retrieval", "generation")


@dataclass(frozen=True)
class Features:
    """One image's encoder output for one side: int8 codes (N, H), scales per token (N,) and
    per channel (H,), float16."""

    codes: np.ndarray
    token_scales: np.ndarray
    channel_scales: np.ndarray

    @classmethod
    def quantize(cls, hidden: np.ndarray) -> Features:
        """From a (N, H) float array."""
        hidden = np.asarray(hidden, dtype=np.float32)
        channel = np.abs(hidden).max(axis=0)  # (H,)
        channel = np.where(channel > 0, channel / max(float(np.median(channel)), 1e-12), 1.0)
        channel = channel.astype(np.float16).astype(np.float32)
        flat = hidden / channel
        token = np.abs(flat).max(axis=1) / 127.0  # (N,)
        token = np.where(token > 0, token, 1.0).astype(np.float16).astype(np.float32)
        codes = np.clip(np.rint(flat / token[:, None]), -127, 127).astype(np.int8)
        return cls(codes, token.astype(np.float16), channel.astype(np.float16))

    def dequantize(self) -> np.ndarray:
        """(N, H) float32."""
        token, channel = self.token_scales.astype(np.float32), self.channel_scales.astype(np.float32)
        return self.codes.astype(np.float32) * token[:, None] * channel[None, :]

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    def to_bytes(self) -> bytes:
        return self.codes.tobytes() + self.token_scales.tobytes() + self.channel_scales.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, shape: tuple[int, int]) -> Features:
        tokens, width = shape
        codes = np.frombuffer(data, dtype=np.int8, count=tokens * width).reshape(shape)
        scales = np.frombuffer(data, dtype=np.float16, offset=tokens * width)
        if scales.size != tokens + width:
            raise ValueError(f"stored features hold {len(data)} bytes, not those of {tokens} x {width}")
        return cls(codes, scales[:tokens], scales[tokens:])

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.token_scales.nbytes + self.channel_scales.nbytes


def stack(features: list[Features]) -> np.ndarray:
    """(B, N, H) float32 from B images' features of one side."""
    return np.stack([item.dequantize() for item in features])
