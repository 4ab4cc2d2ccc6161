"""`blip2-search ask ID "QUESTION" [--at SECONDS]`: the generation model answers a question
about an image, or about a video's frame at a time."""

from __future__ import annotations

import argparse

from search.errors import InputError

from .common import searcher
from .output import emit


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    ask = sub.add_parser("ask", parents=parents, help="ask a question about an indexed image")
    ask.add_argument("id", type=int)
    ask.add_argument("question")
    ask.add_argument("--at", type=float, metavar="SECONDS", help="a video's: the frame shown at this time")
    ask.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.schemas import Answer

    if not args.question.strip():
        raise InputError("the question is empty")
    with searcher(args) as found:
        answer = found.questions.ask(args.id, args.question, at=args.at)
    emit(args, Answer(id=args.id, question=args.question, answer=answer), [answer])
    return 0
