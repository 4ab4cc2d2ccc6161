"""Parts of captions, as users type queries (`a red circle`, `blue square`, `a small yellow
star`, `a green triangle and a white circle`, `a red circle on a black background`), and
which shapes-world images each one fits. The demo model learns ITC and ITM on them next to
the full captions: trained on full captions alone, a short query landed far from every image
that holds what it names (the top 5 all held the named colour for 6 of 32 such queries).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from .shapes import COLORS, SHAPES, Shape, article

Part = tuple[str | None, str | None, str | None]  # (size, colour, kind); None: not said


@dataclass(frozen=True)
class Phrase:
    parts: tuple[Part, ...]  # one shape, or both in left-to-right order
    background: str | None = None
    articles: bool = True

    @property
    def text(self) -> str:
        named = []
        for part in self.parts:
            words = " ".join(w for w in part if w)
            named.append(f"{article(words)} {words}" if self.articles else words)
        tail = f" on {article(self.background)} {self.background} background" if self.background else ""
        return " and ".join(named) + tail

    def fits(self, shapes: list[Shape], background: str) -> bool:
        if self.background is not None and self.background != background:
            return False
        if len(self.parts) == 2:
            return len(shapes) == 2 and all(map(_fits, self.parts, shapes))
        return any(_fits(self.parts[0], shape) for shape in shapes)


def _fits(part: Part, shape: Shape) -> bool:
    truth = (shape.size, shape.color, shape.kind)
    return all(said is None or said == real for said, real in zip(part, truth, strict=True))


def phrase_for(shapes: list[Shape], background: str, rng: random.Random) -> Phrase:
    """A phrase that fits the image: mostly colour and kind of one shape, sometimes with its
    size or the background, sometimes the kind alone, or both shapes in order."""
    roll = rng.random()
    if len(shapes) == 2 and roll < 0.2:
        return Phrase(tuple((None, s.color, s.kind) for s in shapes))
    s = rng.choice(shapes)
    if roll < 0.55:
        return Phrase(((None, s.color, s.kind),), articles=rng.random() < 0.5)
    if roll < 0.7:
        return Phrase(((s.size, s.color, s.kind),))
    if roll < 0.85:
        return Phrase(((None, s.color, s.kind),), background)
    return Phrase(((None, None, s.kind),), articles=rng.random() < 0.5)


def mismatch(phrase: Phrase, shapes: list[Shape], background: str, rng: random.Random) -> Phrase:
    """`phrase` with one word changed so that it no longer fits the image: the kind, the
    colour, the size or the background, or for two shapes which colour goes with which."""
    for _ in range(50):
        i = rng.randrange(len(phrase.parts))
        size, color, kind = phrase.parts[i]
        roll = rng.random()
        parts = list(phrase.parts)
        other = replace(phrase)
        if len(parts) == 2 and roll < 0.3:
            (_, c0, k0), (_, c1, k1) = parts
            parts = [(None, c1, k0), (None, c0, k1)]
        elif roll < 0.5 or color is None:
            parts[i] = (size, color, rng.choice(SHAPES))
        elif roll < 0.8 or (size is None and phrase.background is None):
            parts[i] = (size, rng.choice(list(COLORS)), kind)
        elif size is not None:
            parts[i] = ("small" if size == "large" else "large", color, kind)
        else:
            other = replace(phrase, background=rng.choice(list(COLORS)))
        other = replace(other, parts=tuple(parts))
        if not other.fits(shapes, background):
            return other
    raise RuntimeError(f"no mismatch found for {phrase.text!r}")  # a kind or colour swap always exists
