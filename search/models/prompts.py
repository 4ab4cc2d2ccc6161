"""The text BLIP-2 is prompted with, in the formats of the BLIP-2 paper and LAVIS."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError
from ..records import Turn


def vqa_prompt(question: str, history: Sequence[Turn] = ()) -> str:
    """`Question: {q} Answer:`, earlier turns prepended as `Question: {q} Answer: {a}.`"""
    question = question.strip()
    if not question:
        raise InputError("the question is empty")
    turns = [f"Question: {t.question.strip()} Answer: {t.answer.strip()}." for t in history]
    return " ".join([*turns, f"Question: {question} Answer:"])
