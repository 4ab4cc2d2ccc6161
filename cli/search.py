"""`blip2-search search "QUERY"`: images ranked by BLIP-2's first-stage score, optionally
reranked by the match head, fused with the captions' full-text rank, or filtered."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from search.config import Sort, choices
from search.errors import InputError

from .common import searcher
from .output import emit, hit_lines, warn


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    search = sub.add_parser("search", parents=parents, help="search the index with text")
    search.add_argument("query", help="terms joined by a spaced + or -, each may be weighted (2:dog) or an "
                        "indexed image (#42); filters path:, after:, before:, caption:, text: anywhere")
    search.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    search.add_argument("--offset", type=int, default=0, help="skip this many results (paging)")
    search.add_argument("--sort", choices=choices(Sort), default="relevance",
                        help="newest/oldest: the candidates the match head calls a match, by date")
    search.add_argument("--candidates", type=int, metavar="N",
                        help="first-stage hits a date order or --where considers (default 200)")
    search.add_argument("--where", action="append", default=[], metavar="QUESTION=ANSWER",
                        help='keep hits whose answer to QUESTION is ANSWER, e.g. "is it raining?=yes" '
                        "(repeatable)")
    search.add_argument("--rerank", action="store_true", help="rerank with the match head; fills 'match'")
    search.add_argument("--rerank-top", type=int, metavar="N",
                        help="hits reranked (default: the page shown on a CPU, 128 on a GPU)")
    search.add_argument("--min-match", type=float, metavar="P", help="drop hits below this match probability")
    search.add_argument("--hybrid", action="store_true", help="fuse caption full-text and vector ranks")
    search.add_argument("--path-prefix", help="only images under this folder")
    search.add_argument("--after", help="only images taken (EXIF, else modified) on or after this date")
    search.add_argument("--before", help="only images taken (EXIF, else modified) before this date")
    search.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.query.options import SearchOptions, check

    options = SearchOptions(
        k=args.k, offset=args.offset, rerank=args.rerank, rerank_top=args.rerank_top,
        min_match=args.min_match, hybrid=args.hybrid,
        path_prefix=str(Path(args.path_prefix).expanduser().resolve()) if args.path_prefix else None,
        after=_date(args.after, "--after"), before=_date(args.before, "--before"),
        sort=args.sort, candidates=args.candidates, where=tuple(args.where),
    )
    check(args.query, options)  # a malformed query, condition or option fails before the model loads
    with searcher(args) as found:
        results = found.find(args.query, options)
    report = results.where
    notes = results.notes + ([f"where: {report.passed} of {report.asked} asked passed "
                              f"({report.stopped}; {report.budget} candidates)"] if report else [])
    for note in notes if not args.json else ():
        warn(note)
    emit(args, results, hit_lines(results.results))
    return 0


def _date(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{flag} takes a date like 2024-05-31 or 2024-05-31T18:00, not {value!r}") from None
