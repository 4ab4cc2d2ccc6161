"""`blip2-search explain ID "TEXT" [--at SECONDS] [--out overlay.png]`: why an image (or a
video's moment) matched a text."""

from __future__ import annotations

import argparse
from pathlib import Path

from search.errors import InputError

from .common import searcher
from .output import emit


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    explain = sub.add_parser("explain", parents=parents, help="why an indexed image matched a text")
    explain.add_argument("id", type=int)
    explain.add_argument("text")
    explain.add_argument("--at", type=float, metavar="SECONDS",
                         help="a video's: its moment shown at this time")
    explain.add_argument("--out", type=Path, help="write the image with the evidence laid over it (PNG)")
    explain.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.media.images import heat_overlay

    if not args.text.strip():
        raise InputError("the text is empty")
    if args.out is not None and not args.out.parent.is_dir():
        raise InputError(f"--out: the folder {args.out.parent} does not exist")
    with searcher(args) as found:
        explanation = found.questions.explain(args.id, args.text, args.at)
        if args.out is not None:
            picture = found.lookup.picture(found.lookup.moment(args.id, args.at))
            heat_overlay(picture, explanation.grid).save(args.out, format="PNG")
    rows, cols = len(explanation.grid), len(explanation.grid[0])
    peak = max((value, r, c) for r, row in enumerate(explanation.grid) for c, value in enumerate(row))
    lines = [f"query vector {explanation.token} scored best: {explanation.score:.4f}",
             f"the evidence is strongest at row {peak[1] + 1} of {rows}, column {peak[2] + 1} of {cols}"]
    emit(args, explanation, lines + ([f"overlay written to {args.out}"] if args.out else []))
    return 0
