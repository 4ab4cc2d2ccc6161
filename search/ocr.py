"""Text in pictures: `TextReader` reads it with RapidOCR (PP-OCR models on onnxruntime), and
`text_matches` / `phrase_score` find a typed phrase in what was read, forgiving case, small
OCR errors and a word typed only in part.

The engine is built on the first `read`, never on import, and is shared per process
(`reader()`): a decoding worker builds it once. RapidOCR and onnxruntime are optional; without
them `read` raises `OcrUnavailable`.
"""

from __future__ import annotations

import logging
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import SearchError
from .images import open_image

# Chosen by measurement on tests/text_images.py pictures (words 20 to 72 px, decoded to 1024 px):
# the detector sees the picture at most 960 px on its longer side; the 180-degree classifier is
# off (upside-down text is rare in photos and it costs a model call per line).
ENGINE_PARAMS: dict[str, Any] = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 960,
    "Global.use_cls": False,
    "Global.text_score": 0.0,  # every line comes back; `MIN_CONFIDENCE` is applied here
    "Global.log_level": "error",
}
MIN_CONFIDENCE = 0.5  # recognitions scoring less are dropped: below it they are mostly noise
WORD = re.compile(r"[^\W_]+")  # letters and digits; punctuation and spaces separate words
FUZZY = 0.8  # the edit similarity a phrase word needs to match a text word it is not part of


class OcrUnavailable(SearchError):
    """RapidOCR or onnxruntime is not installed, so text in pictures cannot be read."""


class TextReader:
    """One RapidOCR engine, built on first use; calls are serialised by a lock."""

    def __init__(self, *, min_confidence: float = MIN_CONFIDENCE) -> None:
        self.min_confidence = min_confidence
        self._engine: Any = None
        self._lock = threading.Lock()

    def read(self, image: Image.Image) -> str:
        """The text in an RGB picture in reading order: lines top to bottom, each left to
        right, joined by newlines; "" when there is none."""
        with self._lock:
            if self._engine is None:
                self._engine = _build_engine()
            result = self._engine(image.convert("RGB"))
        if not result.txts:
            return ""
        found = [
            (box, text.strip())
            for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True)
            if score >= self.min_confidence and text.strip()
        ]
        return "\n".join(" ".join(line) for line in _lines(found))

    def read_path(self, path: str | Path) -> str:
        """`read` on a file, decoded by `open_image` (EXIF orientation, at most 1024 px)."""
        return self.read(open_image(path))


_shared: TextReader | None = None
_shared_lock = threading.Lock()


def reader() -> TextReader:
    """The process's one TextReader (each decoding worker process gets its own)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TextReader()
        return _shared


def _build_engine() -> Any:
    try:
        import onnxruntime  # noqa: F401  (RapidOCR imports it only when a model first loads)
        from rapidocr import RapidOCR
    except ImportError as exc:
        raise OcrUnavailable(
            f"reading text in pictures needs rapidocr and onnxruntime ({exc}): "
            "pip install rapidocr onnxruntime, or index with --no-ocr"
        ) from None
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # it logs every model load at INFO
    return RapidOCR(params=ENGINE_PARAMS)


def _lines(found: list[tuple[Any, str]]) -> list[list[str]]:
    """Texts grouped into lines, top to bottom, each left to right. `found` holds (4, 2) boxes
    of (x, y) corners; a box joins the line above when its vertical middle is within half a
    box height of the middle of that line's last box."""
    boxes = sorted((float(b[:, 1].mean()), float(np.ptp(b[:, 1])), float(b[:, 0].min()), t) for b, t in found)
    lines: list[list[tuple[float, float, float, str]]] = []
    for box in boxes:
        if lines and abs(box[0] - lines[-1][-1][0]) < 0.5 * max(box[1], lines[-1][-1][1]):
            lines[-1].append(box)
        else:
            lines.append([box])
    return [[text for *_, text in sorted(line, key=lambda box: box[2])] for line in lines]


def text_matches(text: str, phrase: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the words of `text` that match some word of `phrase`,
    in order. The rule, per phrase word `q` and text word `t`, both case-folded, words being
    runs of letters and digits: `t` matches when it contains `q` (a `q` of one or two
    characters only at the start of `t`), or when the edit similarity 1 - d / max(len) between
    `q` and `t` or a prefix of `t` is at least 0.8, d counting insertions, deletions,
    substitutions and swaps of neighbours: one slip in a word of five or more letters."""
    queries = [q.casefold() for q in WORD.findall(phrase)]
    words = WORD.finditer(text)
    return [m.span() for m in words if any(_word_score(q, m.group().casefold()) for q in queries)]


def phrase_score(text: str, phrase: str) -> float:
    """How well `text` holds `phrase`, 0..1: the mean over the phrase's words of their best
    match (1 the same word, 0.9 part of a word, 0.8 x similarity a fuzzy match as in
    `text_matches`, 0 none), times 0.9 when the words found are not in the phrase's order."""
    queries = [q.casefold() for q in WORD.findall(phrase)]
    words = [w.casefold() for w in WORD.findall(text)]
    if not queries or not words:
        return 0.0
    total, positions = 0.0, []
    for q in queries:
        score, position = max((_word_score(q, w), -i) for i, w in enumerate(words))
        total += score
        if score:
            positions.append(-position)
    in_order = all(a < b for a, b in zip(positions, positions[1:], strict=False))
    return total / len(queries) * (1.0 if in_order else 0.9)


@lru_cache(maxsize=65536)
def _word_score(q: str, t: str) -> float:
    if q == t:
        return 1.0
    if (len(q) > 2 and q in t) or t.startswith(q):
        return 0.9
    similarity = _prefix_similarity(q, t)
    return 0.8 * similarity if similarity >= FUZZY else 0.0


def _prefix_similarity(q: str, t: str) -> float:
    """max over the prefixes p of t (t included) of 1 - d(q, p) / max(len(q), len(p)), d the
    optimal-string-alignment distance; 0 as soon as no prefix can reach `FUZZY`."""
    limit = int((1 - FUZZY) * max(len(q), len(t)) + 1e-9)  # the most edits any prefix may need
    if len(t) < len(q) - limit:
        return 0.0
    before, row = None, list(range(len(t) + 1))  # row[j]: d(q[:i], t[:j])
    for i in range(1, len(q) + 1):
        current = [i] + [0] * len(t)
        for j in range(1, len(t) + 1):
            cost = q[i - 1] != t[j - 1]
            current[j] = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + cost)
            if before and i > 1 and j > 1 and q[i - 1] == t[j - 2] and q[i - 2] == t[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
        if min(current) > limit:
            return 0.0
        before, row = row, current
    return max(1 - row[j] / max(len(q), j) for j in range(1, len(t) + 1))
