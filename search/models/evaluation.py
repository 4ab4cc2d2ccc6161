"""Measuring a model on a folder of images and a JSONL of caption and question records.

    {"image": "a.jpg", "caption": "a dog on a beach"}
    {"image": "a.jpg", "question": "what animal is it?", "answer": "dog"}

Retrieval follows the BLIP-2 paper: first-stage ITC ranking, and ITM rerank of the top 128
by the mean match logit plus the ITC similarity, as LAVIS scores it (`compute_sim_matrix`).
A text→image hit is any image one of whose captions equals the query; an image→text hit is
any of the image's own caption texts. Answers and captions are compared after lower-casing
and stripping punctuation; BLEU-4 is corpus-level with all references (Papineni et al.).
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..media.images import open_image

KS = (1, 5, 10)


@dataclass
class EvalSet:
    images: list[Path]
    captions: list[tuple[int, str]] = field(default_factory=list)  # (image index, caption)
    questions: list[tuple[int, str, str]] = field(default_factory=list)  # (image index, q, a)


def load_records(folder: Path, records: Path) -> EvalSet:
    """Read the JSONL; every named image must exist in `folder`."""
    index: dict[str, int] = {}
    data = EvalSet(images=[])
    for number, line in enumerate(records.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            name = record["image"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{records}:{number}: not a record with an \"image\" field") from None
        if name not in index:
            path = folder / name
            if not path.is_file():
                raise InputError(f"{records}:{number}: no image {path}")
            index[name] = len(data.images)
            data.images.append(path)
        if "caption" in record:
            data.captions.append((index[name], str(record["caption"])))
        elif "question" in record and "answer" in record:
            data.questions.append((index[name], str(record["question"]), str(record["answer"])))
        else:
            raise InputError(f"{records}:{number}: needs a caption, or a question and an answer")
    if not data.images:
        raise InputError(f"{records} holds no records")
    return data


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def recall_at(ranks: Sequence[int], ks: Sequence[int] = KS) -> dict[str, float]:
    """`ranks`: 0-based rank of the first relevant item per query (a large number if none)."""
    ranks = np.asarray(ranks)
    return {f"r{k}": float((ranks < k).mean()) if len(ranks) else 0.0 for k in ks}


NOT_FOUND = sys.maxsize  # the rank of a relevant item the ranking does not hold: past every k


def first_relevant_rank(order: np.ndarray, relevant: set[int]) -> int:
    """The 0-based rank of the first relevant item of `order`; NOT_FOUND when it holds none
    (a rerank's top 4 that missed it does not count it as found at 5 or 10)."""
    for rank, item in enumerate(order.tolist()):
        if item in relevant:
            return rank
    return NOT_FOUND


def bleu4(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4, uniform weights, brevity penalty against the closest reference length."""
    matched, total = [0] * 4, [0] * 4
    hyp_length = ref_length = 0
    for hypothesis, refs in zip(hypotheses, references, strict=True):
        hyp = normalise(hypothesis).split()
        ref_tokens = [normalise(r).split() for r in refs]
        hyp_length += len(hyp)
        ref_length += min((abs(len(r) - len(hyp)), len(r)) for r in ref_tokens)[1]
        for n in range(1, 5):
            counts = Counter(tuple(hyp[i : i + n]) for i in range(len(hyp) - n + 1))
            best: Counter = Counter()
            for ref in ref_tokens:
                best |= Counter(tuple(ref[i : i + n]) for i in range(len(ref) - n + 1))
            matched[n - 1] += sum(min(count, best[gram]) for gram, count in counts.items())
            total[n - 1] += max(len(hyp) - n + 1, 0)
    if min(matched) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matched, total, strict=True)) / 4
    brevity = 1.0 if hyp_length > ref_length else math.exp(1 - ref_length / max(hyp_length, 1))
    return brevity * math.exp(log_precision)


def evaluate(engine, data: EvalSet, *, rerank_top: int = 128, batch_size: int = 16,
             progress: Callable[[str], None] = lambda stage: None) -> dict:
    """Every figure the `eval` command reports, as a dict."""
    images = [open_image(path) for path in data.images]
    progress("embedding")
    image_vecs = np.concatenate([engine.embed_images(images[i : i + batch_size])
                                 for i in range(0, len(images), batch_size)])
    result: dict = {"images": len(images), "captions": len(data.captions), "questions": len(data.questions)}
    if data.captions:
        progress("retrieval")
        result |= _retrieval(engine, images, image_vecs, data, rerank_top, batch_size)
        progress("captioning")
        result |= _captioning(engine, images, data, batch_size)
    if data.questions:
        progress("questions")
        result |= _answers(engine, images, data, batch_size)
    return result


def _retrieval(engine, images, image_vecs, data: EvalSet, rerank_top: int, batch_size: int) -> dict:
    texts = sorted({caption for _, caption in data.captions})
    owners = {text: {image for image, c in data.captions if c == text} for text in texts}
    text_vecs = np.concatenate([engine.embed_texts(texts[i : i + 256]) for i in range(0, len(texts), 256)])
    sims = engine.itc(image_vecs, text_vecs)  # (images, texts)
    t2i = [first_relevant_rank(np.argsort(-sims[:, t], kind="stable"), owners[text])
           for t, text in enumerate(texts)]
    own = [{t for t, text in enumerate(texts) if i in owners[text]} for i in range(len(images))]
    i2t = [first_relevant_rank(np.argsort(-sims[i], kind="stable"), own[i]) if own[i] else NOT_FOUND
           for i in range(len(images))]
    result = {"t2i": recall_at(t2i), "i2t": recall_at([r for r, o in zip(i2t, own, strict=True) if o])}
    if rerank_top > 0:
        t2i_rr, i2t_rr = [], []
        for t, text in enumerate(texts):
            top = np.argsort(-sims[:, t], kind="stable")[:rerank_top]
            match = _itm(engine, [images[i] for i in top], [text] * len(top), batch_size) + sims[top, t]
            t2i_rr.append(first_relevant_rank(top[np.argsort(-match, kind="stable")], owners[text]))
        for i in range(len(images)):
            if not own[i]:
                continue
            top = np.argsort(-sims[i], kind="stable")[:rerank_top]
            match = _itm(engine, [images[i]] * len(top), [texts[t] for t in top], batch_size) + sims[i, top]
            i2t_rr.append(first_relevant_rank(top[np.argsort(-match, kind="stable")], own[i]))
        result |= {"t2i_rerank": recall_at(t2i_rr), "i2t_rerank": recall_at(i2t_rr)}
    return result


def _itm(engine, images, texts, batch_size: int) -> np.ndarray:
    """The rerank score before the ITC similarity is added: the mean match logit (LAVIS)."""
    return np.concatenate([engine.itm(images[i : i + batch_size], texts[i : i + batch_size], logit=True)
                           for i in range(0, len(images), batch_size)])


def _captioning(engine, images, data: EvalSet, batch_size: int) -> dict:
    refs: dict[int, list[str]] = {}
    for image, caption in data.captions:
        refs.setdefault(image, []).append(caption)
    order = sorted(refs)
    generated = []
    for start in range(0, len(order), batch_size):
        generated += engine.caption([images[i] for i in order[start : start + batch_size]])
    exact = [normalise(g) in {normalise(r) for r in refs[i]} for g, i in zip(generated, order, strict=True)]
    return {"caption_exact_match": float(np.mean(exact)),
            "caption_bleu4": bleu4(generated, [refs[i] for i in order])}


def _question_kind(question: str) -> str:
    """Its first two words ("what color", "is there"), and "background" when it names it."""
    words = normalise(question).split()
    return " ".join(words[:2]) + (" background" if "background" in words else "")


def _answers(engine, images, data: EvalSet, batch_size: int) -> dict:
    from . import Question

    answers: list[str] = []
    for start in range(0, len(data.questions), batch_size):
        chunk = data.questions[start : start + batch_size]
        answers += engine.ask_batch([Question(images[i], q) for i, q, _ in chunk])
    truths = [truth for _, _, truth in data.questions]
    correct = [normalise(a) == normalise(t) for a, t in zip(answers, truths, strict=True)]
    by_kind: dict[str, list[bool]] = {}
    for ok, (_, question, _) in zip(correct, data.questions, strict=True):
        by_kind.setdefault(_question_kind(question), []).append(ok)
    return {"vqa_accuracy": float(np.mean(correct)),
            "vqa_by_kind": {kind: float(np.mean(oks)) for kind, oks in sorted(by_kind.items())}}
