"""What the CLI prints: JSON under --json, lines of text otherwise, progress on a terminal."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from pydantic import BaseModel

from search.display import one_line

T = TypeVar("T")


def emit(args: argparse.Namespace, payload: BaseModel | dict | list, lines: Sequence[str]) -> None:
    """Print `payload` as JSON under --json (a contract shape as the API returns it), else the
    human `lines`."""
    if args.json:
        data = payload.model_dump(mode="json") if isinstance(payload, BaseModel) else payload
        print(json.dumps(data, ensure_ascii=False))
    else:
        for line in lines:  # a file name's control characters and bytes that are not UTF-8 as \xNN
            print(one_line(line))


def warn(message: str) -> None:
    print(one_line(message), file=sys.stderr)


def hit_lines(hits) -> list[str]:
    lines = []
    for rank, hit in enumerate(hits, start=1):
        match = f"  match {hit.match:.3f}" if hit.match is not None else ""
        caption = f"  {hit.caption}" if hit.caption else ""
        score = f"{hit.score:.4f}" if hit.score is not None else (hit.taken_at or "")[:10]
        at = f" at {clock(hit.time_s)} of {clock(hit.duration_s or 0)}" if hit.media == "video" else ""
        lines.append(f"{rank:>3}. {score}{match}  [{hit.id}] {hit.path}{at}{caption}")
    return lines or ["no results"]


def clock(seconds: float) -> str:
    """12.5 -> "0:12.5", 3725 -> "1:02:05.0": a time in a video."""
    minutes, rest = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"


def progress(items: Iterable[T], *, total: int, unit: str, args: argparse.Namespace) -> Iterator[T]:
    """A progress bar on stderr when it is a terminal and output is not JSON."""
    if args.json or not sys.stderr.isatty():
        yield from items
        return
    from tqdm import tqdm

    with tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True) as bar:
        for item in items:
            yield item
            bar.update(len(item) if isinstance(item, list | tuple) else 1)


def progress_bar(total: int, unit: str, args: argparse.Namespace):
    """A callback advancing a progress bar by n items; silent off a terminal or under --json."""
    if args.json or not sys.stderr.isatty() or total == 0:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def advance(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return advance
