"""A question as a filter: `--where "is it raining?=yes"` asks each candidate the question with
the decoder and keeps the hits whose normalised answer is the one given."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import InputError
from ..schemas import Hit, WhereReport

ASKED_AT_ONCE = 8  # candidates a batched beam search answers together

NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
           "eleven", "twelve")
_ARTICLE = re.compile(r"^(a|an|the)\s+")


def normalise(answer: str) -> str:
    """Case, surrounding punctuation, a leading article and number words set aside: `Two.`,
    `two` and `2` are one answer, as are `a cat` and `cat`."""
    text = re.sub(r"\s+", " ", answer.strip().lower()).strip(" .,!?;:'\"")
    text = _ARTICLE.sub("", text)
    return str(NUMBERS.index(text)) if text in NUMBERS else text


@dataclass(frozen=True)
class Where:
    question: str
    answer: str  # normalised

    @classmethod
    def parse(cls, condition: str) -> Where:
        """`QUESTION=ANSWER`, split at the last `=`."""
        question, equals, answer = condition.rpartition("=")
        if not equals or not question.strip() or not normalise(answer):
            raise InputError('a where condition is QUESTION=ANSWER, like "is it raining?=yes", '
                             f"not {condition!r}")
        return cls(question.strip(), normalise(answer))

    def holds(self, answer: str) -> bool:
        return normalise(answer) == self.answer


Answers = Callable[[list[int], str], dict[int, str]]  # (ids, question) -> answer by id


def keep_answering(hits: Sequence[Hit], conditions: Sequence[Where], wanted: int,
                   answers: Answers) -> tuple[list[Hit], WhereReport]:
    """The hits whose answers meet every condition, asking them in rank order, a few at a
    time, until `wanted` pass or the hits run out. A hit that cannot be asked (its file is
    gone) does not pass."""
    kept: list[Hit] = []
    asked = 0
    for start in range(0, len(hits), ASKED_AT_ONCE):
        if len(kept) >= wanted:
            break
        chunk = list(hits[start : start + ASKED_AT_ONCE])
        ids = [hit.row for hit in chunk]  # a video hit is asked about its moment
        given = [answers(ids, condition.question) for condition in conditions]
        kept += [hit for hit in chunk if all(hit.row in got and condition.holds(got[hit.row])
                                             for condition, got in zip(conditions, given, strict=True))]
        asked += len(chunk)
    stopped = "enough hits" if len(kept) >= wanted else "budget"
    return kept, WhereReport(asked=asked, passed=len(kept), budget=len(hits), stopped=stopped)
