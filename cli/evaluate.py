"""`blip2-search eval FOLDER RECORDS.jsonl`: retrieval recall (first stage and reranked), VQA
accuracy and caption quality of a model on labelled images."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import load_engine, settings_from
from .output import emit, warn


def register(sub, parents: list[argparse.ArgumentParser]) -> None:
    evaluate = sub.add_parser("eval", parents=parents, help="measure a model on labelled images")
    evaluate.add_argument("folder", help="folder holding the images")
    evaluate.add_argument("records", help='JSONL of {"image", "caption"} and {"image", "question", "answer"}')
    evaluate.add_argument("--rerank-top", type=int, default=128, help="ITM rerank depth; 0 turns it off")
    evaluate.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from search.models.evaluation import evaluate, load_records
    from search.presets import DEFAULT_PRESET

    settings = settings_from(args)
    data = load_records(Path(args.folder), Path(args.records))
    engine = load_engine(settings, settings.model or DEFAULT_PRESET)
    report = evaluate(engine, data, rerank_top=args.rerank_top,
                      batch_size=settings.batch_size or engine.batch_size(),
                      progress=lambda stage: None if args.json else warn(f"{stage}..."))
    report["model"], report["precision"] = engine.name, engine.precision.describe()
    emit(args, report, _lines(report))
    return 0


def _lines(report: dict) -> list[str]:
    lines = [f"model {report['model']} in {report['precision']}: {report['images']} images, "
             f"{report['captions']} captions, {report['questions']} questions"]
    for key, title in (("t2i", "text->image"), ("t2i_rerank", "text->image, ITM rerank"),
                       ("i2t", "image->text"), ("i2t_rerank", "image->text, ITM rerank")):
        if key in report:
            lines.append(f"{title:<26} " + "  ".join(f"R@{k[1:]} {v:.3f}" for k, v in report[key].items()))
    for key in ("caption_exact_match", "caption_bleu4", "vqa_accuracy"):
        if key in report:
            lines.append(f"{key.replace('_', ' '):<26} {report[key]:.3f}")
    for kind, value in report.get("vqa_by_kind", {}).items():
        lines.append(f"  vqa, {kind:<22} {value:.3f}")
    return lines
