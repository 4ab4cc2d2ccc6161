"""Whether text read from an image holds what a user typed, tolerant of OCR and of users.

OCR misreads a letter (`recieve`), splits words (`RE16 TGK`), and users type part of a word
(`RE1`, `parce`). One rule filters (`text:`), ranks (`--hybrid`) and marks the matched words
in the web page. Words are runs of letters and digits, compared folded (`fold`: the
compatibility form NFKD, case-folded, accents and other marks dropped, so `grusse`, `grüße`
and `GRÜSSE` all equal `Grüße`). A typed word `q` matches a written word `t`:

- exactly (1.0) when they are equal;
- in part (0.9) when `t` starts with `q`, or holds it and `q` has 3+ characters;
- closely (0.8 × similarity) when the edit similarity 1 − d / max(len) between `q` and `t`,
  or a prefix of `t`, is at least `FUZZY`, d counting insertions, deletions, substitutions
  and swaps of neighbours: one slip per five letters of the longer;
- also against `t` joined to the word after it (`re16tgk` finds `RE16 TGK`).

A phrase matches when every one of its words does; its score is their mean, times 0.9 when
the words found are not in the phrase's order.

A catalog finds the texts to score without scoring them all: it stores each text's `key`,
which holds what `needles` derives from a typed word wherever the word matches.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"  # combining marks: the
# accents of decomposed (NFD) text, part of the word they follow
WORD = re.compile(rf"[^\W_](?:[^\W_]|[{MARKS}])*")  # letters and digits; the rest separates words
ASCII_WORD = re.compile(r"[a-z0-9]+")  # the same in lower-case ASCII
SLIP = 5  # a close match takes at most one edit per SLIP letters of the longer word
FUZZY = 1 - 1 / SLIP  # 0.8: the edit similarity a typed word needs to match a word it is not part of


def fold(word: str) -> str:
    """`word` as the rule compares it: NFKD, case-folded, letters and digits only (the
    accents NFKD splits off dropped): `Grüße` -> `grusse`, `ﬁx` -> `fix`."""
    if word.isascii() and word.isalnum():
        return word.lower()
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", word).casefold())
    return "".join(c for c in folded if c.isalnum())


def words(text: str) -> list[str]:
    """The words of `text`, folded."""
    if text.isascii():  # the common case, at a quarter of the cost
        return ASCII_WORD.findall(text.lower())
    return [folded for folded in map(fold, WORD.findall(text)) if folded]


def key(text: str) -> str:
    """The words of `text` folded and run together, what a catalog searches (`needles`): any
    word, any word joined to the next, and any start of either is a substring of it."""
    return "".join(words(text))


def phrase_score(text: str, phrase: str) -> float:
    """How well `text` holds every word of `phrase`, 0..1; 0 when some word is not found."""
    typed, written = words(phrase), words(text)
    if not typed or not written:
        return 0.0
    total, positions = 0.0, []
    for q in typed:
        score, position = max((_word_score(q, candidate), -i) for i, candidate in enumerate(_joined(written)))
        if score == 0:
            return 0.0
        total += score
        positions.append(-position)
    in_order = all(a < b for a, b in zip(positions, positions[1:], strict=False))
    return total / len(typed) * (1.0 if in_order else 0.9)


def text_matches(text: str, phrase: str) -> list[tuple[int, int]]:
    """The (start, end) character spans of the words of `text` that words of `phrase` match,
    in order: what the web page marks."""
    typed = words(phrase)
    found = list(WORD.finditer(text))
    marked: set[tuple[int, int]] = set()
    for i, match in enumerate(found):
        word = fold(match.group())
        if any(_word_score(q, word) for q in typed):
            marked.add(match.span())
        elif i + 1 < len(found):  # a typed word across two written ones
            after = fold(found[i + 1].group())
            if any(len(q) > max(len(word), len(after)) and _word_score(q, word + after) for q in typed):
                marked |= {match.span(), found[i + 1].span()}
    return sorted(marked)


def marks(text: str, phrases: list[str]) -> list[tuple[int, int]]:
    """`text_matches` for several phrases together, each span once, in order."""
    return sorted({span for phrase in phrases for span in text_matches(text, phrase)})


def _joined(written: list[str]) -> list[str]:
    """Each word, then each word joined to the next (after all the single words, so a word
    found alone keeps its own position)."""
    return written + [a + b for a, b in zip(written, written[1:], strict=False)]


@lru_cache(maxsize=65536)
def _word_score(q: str, t: str) -> float:
    if q == t:
        return 1.0
    if (len(q) > 2 and q in t) or t.startswith(q):
        return 0.9
    similarity = _prefix_similarity(q, t)
    return 0.8 * similarity if similarity >= FUZZY else 0.0


def _prefix_similarity(q: str, t: str) -> float:
    """max over the prefixes p of t (t included) of 1 − d(q, p) / max(len(q), len(p)), d the
    optimal-string-alignment distance; 0 as soon as no prefix can reach `FUZZY`."""
    limit = min(max(len(q), len(t)) // SLIP, _slips(q))  # the most edits a prefix may need
    t = t[: len(q) + limit]  # a longer prefix is more than `limit` edits from `q`
    if limit == 0 or len(t) < len(q) - limit:  # with no edit, `t` starts with `q`: a part, not close
        return 0.0
    if sum(max(0, q.count(c) - t.count(c)) for c in set(q)) > limit:  # an edit brings one letter of q
        return 0.0
    before, row = None, list(range(len(t) + 1))  # row[j]: d(q[:i], t[:j])
    for i in range(1, len(q) + 1):
        current = [i] + [0] * len(t)
        for j in range(1, len(t) + 1):
            cost = q[i - 1] != t[j - 1]
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + cost)
            if before and i > 1 and j > 1 and q[i - 1] == t[j - 2] and q[i - 2] == t[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return 0.0
        before, row = row, current
    return max(1 - row[j] / max(len(q), j) for j in range(1, len(t) + 1))


def _slips(q: str) -> int:
    """The most edits a close match of `q` takes: e ≤ max(len) / SLIP, and the prefix matched
    is at most e longer than `q`, so e ≤ len(q) / (SLIP − 1)."""
    return len(q) // (SLIP - 1)
