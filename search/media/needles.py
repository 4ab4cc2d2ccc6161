"""What a catalog looks for to find every text `textmatch` accepts for a typed word, without
scoring them all: substrings of each text's `key` (its folded words run together, so a word
joined to the next is one too), as LIKE patterns in which `ANY` stands for one character.

A word `q` matches a written word it is part of, or a prefix p of one within e ≥ 1 edits,
e ≤ max(len(q), len(p)) / SLIP (`textmatch`), so e ≤ len(q) / (SLIP − 1). For each such e,
cut `q` into e parts: an edit touches one part, a swap of neighbours across a cut two, and
there are e − 1 cuts, so e edits touch parts at most 2e − 1 times and some part at most
once; the key holds that part within one edit: one letter missing, changed, added or
swapped with the next. When len(q) = (SLIP − 1)·e, a prefix within e edits is long enough
only if all e edits add letters, so the part is there whole or with one letter added:
longer patterns, held by fewer texts. Every list holds a substring of each part too, so a
key holding `q` holds one.
"""

from __future__ import annotations

from .textmatch import SLIP

ANY = "_"  # any one character, as in SQL's LIKE; a folded word holds no `_` and no `%`


def needles(q: str) -> list[list[str]]:
    """For the folded word `q`: lists of patterns, the key of every text that `q` matches
    holding one of each list. Two lists when the parts can be cut two ways (the longer ones
    first, or last), each of which must hold: a text proposed by a short pattern of one
    cutting must also hold one of the other's."""
    cuttings = {tuple(_needles(q, longer_first)) for longer_first in (True, False)}
    return [list(cutting) for cutting in sorted(cuttings)]


def _needles(q: str, longer_first: bool) -> list[str]:
    slips = len(q) // (SLIP - 1)
    if slips == 0:
        return [q]  # no edit: the word is in the key as it was typed
    found: set[str] = set()
    for edits in range(1, slips + 1):
        adding = len(q) == (SLIP - 1) * edits  # the match is long enough only with e added letters
        for part in _parts(q, edits, longer_first):
            found |= _added(part) if adding else _one_edit(part)
    return sorted(found)


def _parts(q: str, count: int, longer_first: bool) -> list[str]:
    """`q` cut into `count` parts of near-equal length, the longer ones first or last."""
    size, longer = divmod(len(q), count)
    sizes = [size + 1] * longer + [size] * (count - longer)
    if not longer_first:
        sizes.reverse()
    cuts = [sum(sizes[:i]) for i in range(count + 1)]
    return [q[a:b] for a, b in zip(cuts, cuts[1:], strict=False)]


def _added(part: str) -> set[str]:
    """Patterns one of which every string holds that is `part` with at most one letter added."""
    return {part} | {part[:i] + ANY + part[i:] for i in range(1, len(part))}


def _one_edit(part: str) -> set[str]:
    """Patterns one of which every string within one edit of `part` holds: a letter missing
    (at an end that also covers one changed there, one added, and none), changed, added, or
    swapped with the next."""
    found = set()
    for i in range(len(part)):
        found.add(part[:i] + part[i + 1 :])
        if 0 < i < len(part) - 1:
            found.add(part[:i] + ANY + part[i + 1 :])
        if i > 0:
            found.add(part[:i] + ANY + part[i:])
        if i + 1 < len(part):
            found.add(part[:i] + part[i + 1] + part[i] + part[i + 2 :])
    return found
