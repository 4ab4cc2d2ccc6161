"""CLI commands that read an index: search, similar, ask."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from search.errors import InputError

from .commands import load_engine, open_collection, settings_from
from .output import emit


def _searcher(args: argparse.Namespace):
    from search.queries import Searcher

    settings = settings_from(args)
    collection = open_collection(settings)
    indexed = collection.model.name if collection.model else None
    if indexed is None:
        raise InputError(f"the index at {collection.folder} is empty: run `blip2-search index PATH` first")
    return Searcher(collection, load_engine(settings, indexed))


def _date(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"{flag} takes a date like 2024-05-31 or 2024-05-31T18:00, not {value!r}") from None


def _hit_lines(hits) -> list[str]:
    lines = []
    for rank, hit in enumerate(hits, start=1):
        match = f"  match {hit.match:.3f}" if hit.match is not None else ""
        caption = f"  {hit.caption}" if hit.caption else ""
        lines.append(f"{rank:>3}. {hit.score:.4f}{match}  [{hit.id}] {hit.path}{caption}")
    return lines or ["no results"]


def search(args: argparse.Namespace) -> int:
    from search.queries import SearchOptions

    options = SearchOptions(
        k=args.k, offset=args.offset, rerank=args.rerank, rerank_top=args.rerank_top,
        min_match=args.min_match, hybrid=args.hybrid,
        path_prefix=str(Path(args.path_prefix).expanduser().resolve()) if args.path_prefix else None,
        after=_date(args.after, "--after"), before=_date(args.before, "--before"),
    )
    if not args.query.strip():
        raise InputError("the query is empty")
    searcher = _searcher(args)
    try:
        hits = searcher.search(args.query, options)
    finally:
        searcher.collection.close()
    emit(args, {"query": args.query, "results": [h.to_json() for h in hits]}, _hit_lines(hits))
    return 0


def similar(args: argparse.Namespace) -> int:
    if (args.image is None) == (args.id is None):
        raise InputError("give an image path or --id, not both")
    searcher = _searcher(args)
    try:
        if args.id is not None:
            hits, query = searcher.similar(image_id=args.id, k=args.k), args.id
        else:
            hits, query = _similar_to_file(searcher, Path(args.image), args.k), args.image
    finally:
        searcher.collection.close()
    emit(args, {"query": query, "results": [h.to_json() for h in hits]}, _hit_lines(hits))
    return 0


def _similar_to_file(searcher, path: Path, k: int):
    from search.images import open_image

    record = searcher.collection.catalog.record_for_path(str(path.expanduser().resolve()))
    if record is not None and record.status == "ok":
        return searcher.similar(image_id=record.id, k=k)  # indexed: left out of its own results
    return searcher.similar(image=open_image(path), k=k)


def ask(args: argparse.Namespace) -> int:
    if not args.question.strip():
        raise InputError("the question is empty")
    searcher = _searcher(args)
    try:
        answer = searcher.ask(args.id, args.question)
    finally:
        searcher.collection.close()
    emit(args, {"id": args.id, "question": args.question, "answer": answer}, [answer])
    return 0
