"""What a catalog looks for to find every text `textmatch` accepts for a typed word, without
scoring them all: substrings of each text's `key` (its folded words run together, so a word
joined to the next is one too), as LIKE patterns in which `ANY` stands for one character.

A word `q` matches a written word it is part of, or a prefix p of one within e ≥ 1 edits,
e ≤ max(len(q), len(p)) / SLIP (`textmatch`), so e ≤ s = len(q) // (SLIP − 1). Cut `q`
into s parts. A letter added inside a part leaves the part in the key with one letter
added; a swap of neighbours across a cut does that to both parts (`ab|cd` read `acbd` holds
`a_b` and `c_d`); any other edit (a letter changed or dropped, a swap within a part) spoils
the one part it is in. Spoiling every part, or adding to it twice, takes n + I/2 + x ≥ s
for n spoiling edits, I added letters and x swaps across cuts: with e = n + I + x ≤ s,
only s edits adding no letter. Otherwise some part is in the key whole or with one letter
added (`_added`). A match of s edits adding no letter is long enough only when len(q) ≥
SLIP·s (5, 6, 7, 10, 11 or 15 letters); then the parts, of 5 letters or more, are sought
within any one edit (`_one_edit`), as s edits touch s parts at most 2s − 1 times. Every
pattern list holds a substring of each part, so the key of a text holding `q` holds one.
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
    patterns = _added if len(q) < SLIP * slips else _one_edit  # see the module's docstring
    return sorted({needle for part in _parts(q, slips, longer_first) for needle in patterns(part)})


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
