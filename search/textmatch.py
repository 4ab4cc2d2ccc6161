"""Whether text read from an image holds what a user typed, tolerant of OCR and of users.

OCR misreads a letter (`recieve`), splits or joins words (`RE16 TGK`), and users type part
of a word (`RE1`, `recei`). One rule, used to filter (`text:`), rank (`--hybrid`) and mark
the matched words in the web page:

- Words are runs of letters and digits, compared in lower case.
- A typed word matches a written word exactly when it is a substring of it, or of it and
  the next word joined (`re16tgk` in `RE16 TGK`).
- Otherwise, a typed word of `FUZZY_FROM` or more characters matches when its edit
  similarity (1 − edit distance / the longer length; a swap of neighbours is one edit) to
  the written word, or to the written word's start as long as the typed word, is at least
  `SIMILAR` (one error in five).
- A phrase matches when every one of its words does; its score is their mean similarity.
"""

from __future__ import annotations

import re

SIMILAR = 0.8  # edit similarity a typed word needs to match a written one
FUZZY_FROM = 4  # shorter typed words must appear exactly (one error in 3 letters is another word)
WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """The words of `text`, in lower case."""
    return [word.lower() for word in WORD.findall(text)]


def phrase_score(text: str, phrase: str) -> float:
    """How well `text` holds every word of `phrase`, in 0..1 (1: each word appears exactly);
    0 when some word is not found."""
    typed = words(phrase)
    if not typed:
        return 0.0
    written = _spans(text)
    scores = [max((_similarity(word, candidate) for candidate in _candidates(written)), default=0.0)
              for word in typed]
    return 0.0 if min(scores) < SIMILAR else sum(scores) / len(scores)


def text_matches(text: str, phrase: str) -> list[tuple[int, int]]:
    """The (start, end) character spans of the words in `text` that words of `phrase` match,
    in order: what the web page marks."""
    typed = words(phrase)
    written = _spans(text)
    marked = []
    for index, (word, start, end) in enumerate(written):
        joined = word + written[index + 1][0] if index + 1 < len(written) else None
        for typed_word in typed:
            if _similarity(typed_word, word) >= SIMILAR:
                marked.append((start, end))
                break
            if joined and typed_word in joined and typed_word not in word + " " + written[index + 1][0]:
                marked += [(start, end), written[index + 1][1:]]
                break
    return sorted(set(marked))


def _spans(text: str) -> list[tuple[str, int, int]]:
    return [(match.group().lower(), match.start(), match.end()) for match in WORD.finditer(text)]


def _candidates(written: list[tuple[str, int, int]]):
    for index, (word, _, _) in enumerate(written):
        yield word
        if index + 1 < len(written):
            yield word + written[index + 1][0]


def _similarity(typed: str, written: str) -> float:
    if typed in written:
        return 1.0
    if len(typed) < FUZZY_FROM:
        return 0.0
    whole = 1 - _distance(typed, written) / max(len(typed), len(written))
    start = written[: len(typed)]
    begun = 1 - _distance(typed, start) / len(typed) if len(written) > len(typed) else 0.0
    return max(whole, begun)


def _distance(a: str, b: str) -> int:
    """Edit distance: insertions, deletions, substitutions and swaps of neighbours (`ie` for
    `ei`) count one each (optimal string alignment)."""
    before, previous = None, list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if before is not None and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        before, previous = previous, current
    return previous[-1]
