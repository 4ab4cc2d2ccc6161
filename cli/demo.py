"""`blip2-search demo`: render a sample collection, index it with the demo model, take a tour."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import load_engine, settings_from
from .output import emit, warn

SEED = 4242  # never used for training data
COUNT = 60
SEARCHES = (("a red circle", False), ("a small yellow star", False),
            ("a blue square on a white background", True))
QUESTIONS = ("what shape is red?", "what color is the background?")  # about the first hit for "a red circle"


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", parents=parents, help="sample images, the demo model and a tour")
    demo.add_argument("dir", nargs="?", help="folder for the sample images (default ./demo-images)")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from demo.shapes import write_collection
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection
    from search.query.options import SearchOptions
    from search.query.searcher import Searcher

    settings = settings_from(args)
    folder = Path(args.dir or "demo-images").expanduser().resolve()
    index = Path(args.index).expanduser().resolve() if args.index else folder / ".blip2-search"
    say = (lambda line: None) if args.json else warn
    say(f"rendering {COUNT} shapes-world images into {folder}")
    write_collection(folder, seed=SEED, count=COUNT)
    engine = load_engine(settings, "demo")
    collection = Collection.open(index, create=True, url=settings.database_url)
    try:
        say(f"indexing them with the demo model into {index}")
        summary = index_paths(collection, engine, [folder], IndexOptions(workers=settings.workers))
        searcher = Searcher(collection, engine)
        tour: dict = {"index": summary.model_dump(mode="json"), "searches": [], "similar": None,
                      "questions": []}
        for query, rerank in SEARCHES:
            hits = searcher.search(query, SearchOptions(k=3, rerank=rerank))
            results = [h.model_dump(mode="json") for h in hits]
            tour["searches"].append({"query": query, "rerank": rerank, "results": results})
        first = tour["searches"][0]["results"][0]
        similar = searcher.similar.find(image_id=first["id"], k=3)
        tour["similar"] = {"query": first["id"], "results": [h.model_dump(mode="json") for h in similar]}
        for question in QUESTIONS:
            tour["questions"].append({"id": first["id"], "question": question,
                                      "answer": searcher.questions.ask(first["id"], question)})
    finally:
        collection.close()
    tour["serve"] = f"blip2-search serve --index {index}"
    emit(args, tour, _lines(tour))
    return 0


def _lines(tour: dict) -> list[str]:
    s = tour["index"]
    lines = [f"indexed {s['added']} new, {s['unchanged']} unchanged, {s['failed']} failed", ""]
    for search in tour["searches"]:
        flag = " --rerank" if search["rerank"] else ""
        lines.append(f'$ blip2-search search "{search["query"]}" -k 3{flag}')
        lines += [_hit(h) for h in search["results"]] + [""]
    lines.append(f"$ blip2-search similar --id {tour['similar']['query']} -k 3")
    lines += [_hit(h) for h in tour["similar"]["results"]] + [""]
    for qa in tour["questions"]:
        lines.append(f'$ blip2-search ask {qa["id"]} "{qa["question"]}"')
        lines.append(f"  {qa['answer']}")
    lines += ["", f"Browse it in a web page: {tour['serve']}  (then open http://127.0.0.1:8000)"]
    return lines


def _hit(hit: dict) -> str:
    match = f"  match {hit['match']:.2f}" if hit["match"] is not None else ""
    return f"  {hit['score']:.3f}{match}  {Path(hit['path']).name}  {hit['caption']}"
