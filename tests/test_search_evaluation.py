"""The eval figures: metric arithmetic, the wiring checked with an oracle, and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cli.main import main
from demo.shapes import write_collection
from search.errors import InputError
from search.models import Blip2Engine
from search.models.evaluation import bleu4, evaluate, first_relevant_rank, load_records, recall_at
from tests.support.engines import FLOAT32


def test_recall_and_ranks():
    assert recall_at([0, 1, 4, 9, 20]) == {"r1": 0.2, "r5": 0.6, "r10": 0.8}
    assert first_relevant_rank(np.array([5, 3, 9]), {9, 7}) == 2
    missed = first_relevant_rank(np.array([5, 3]), {1})  # not in a (reranked) top 2: found at no k
    assert recall_at([missed]) == {"r1": 0.0, "r5": 0.0, "r10": 0.0}


def test_bleu4():
    assert bleu4(["a red circle on a black background"], [["a red circle on a black background"]]) == 1.0
    assert bleu4(["blue square"], [["a red circle on a black background"]]) == 0.0
    # every n-gram matches, but 5 words against 8: only the brevity penalty applies
    assert math.isclose(bleu4(["a b c d e"], [["a b c d e f g h"]]), math.exp(1 - 8 / 5))
    # the closest reference length counts, and punctuation and case do not
    assert bleu4(["A b, c d e."], [["x", "a b c d e"]]) == 1.0


class Oracle:
    """Answers from the labels: each image is recognised by its pixels. A fake engine, used
    only to check that evaluate() turns perfect answers into perfect figures."""

    name = "oracle"

    def __init__(self, data, images, wrong: bool = False):
        self.keys = [image.tobytes() for image in images]
        self.captions = {i: c for i, c in data.captions}
        self.answers = {(i, q): a for i, q, a in data.questions}
        self.wrong = wrong

    def _index(self, image):
        i = self.keys.index(image.tobytes())
        return (i + 1) % len(self.keys) if self.wrong else i

    def embed_images(self, images):
        return np.stack([np.eye(len(self.keys))[self._index(im)][None] for im in images]).astype(np.float32)

    def embed_texts(self, texts):
        owner = {c: i for i, c in self.captions.items()}
        return np.stack([np.eye(len(self.keys))[owner[t]] for t in texts]).astype(np.float32)

    def itc(self, image_vecs, text_vecs):
        return np.einsum("iqd,td->iqt", image_vecs, text_vecs).max(axis=1)

    def itm(self, images, texts, logit=False):
        pairs = zip(images, texts, strict=True)
        scale = 10 if logit else 1
        return np.array([float(self.captions[self._index(im)] == t) * scale for im, t in pairs])

    def caption(self, images):
        return [self.captions[self._index(im)] for im in images]

    def ask_batch(self, questions):
        return [self.answers.get((self._index(q.image), q.question), "?") for q in questions]


@pytest.fixture(scope="module")
def shapes_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evalset")
    return folder, write_collection(folder, seed=77, count=8)


def test_perfect_answers_give_perfect_figures(shapes_set):
    from search.media.images import open_image

    folder, records = shapes_set
    data = load_records(folder, records)
    images = [open_image(p) for p in data.images]
    report = evaluate(Oracle(data, images), data, rerank_top=5, batch_size=3)
    for key in ("t2i", "t2i_rerank", "i2t", "i2t_rerank"):
        assert report[key] == {"r1": 1.0, "r5": 1.0, "r10": 1.0}, key
    assert report["caption_exact_match"] == report["caption_bleu4"] == report["vqa_accuracy"] == 1.0
    assert set(report["vqa_by_kind"]) == {"what color", "what color background", "what shape", "how many",
                                         "is there"}
    wrong = evaluate(Oracle(data, images, wrong=True), data, rerank_top=0)
    assert wrong["t2i"]["r1"] == 0.0 and wrong["caption_exact_match"] == 0.0 and "t2i_rerank" not in wrong


def test_bad_records(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"image": "missing.png", "caption": "x"}\n')
    with pytest.raises(InputError, match="no image"):
        load_records(tmp_path, tmp_path / "r.jsonl")
    (tmp_path / "r.jsonl").write_text("not json\n")
    with pytest.raises(InputError, match=":1: not a record"):
        load_records(tmp_path, tmp_path / "r.jsonl")


def test_eval_command_on_the_tiny_model(shapes_set, tiny_dirs, capsys):
    folder, records = shapes_set
    assert main(["eval", str(folder), str(records), "--model", str(tiny_dirs["opt"]), "--json",
                 "--rerank-top", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["images"], report["captions"], report["questions"]) == (8, 8, 48)
    assert report["precision"] == "float32 (image encoder float32, language model float32)"  # conftest's
    # the command reports what the library measures on the same engine (its wiring, not its maths)
    engine = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=FLOAT32)
    expected = evaluate(engine, load_records(folder, records), rerank_top=4)
    assert {key: report[key] for key in expected} == expected
