"""Text in pictures: `TextReader` reads it with RapidOCR (PP-OCR detection and recognition
models, inside its wheel, on onnxruntime); `textmatch` finds what users type in it.

A picture's reading time is bounded. The detector sees the picture at most 960 px on its
longer side, a fixed cost; the recogniser costs in proportion to the width of the text boxes
it is fed (each scaled to its 48 px height), which grew without limit with the text: a dense
page took 20 to 30 times as long as a sign. So at most `MAX_LINES` (96) boxes are
recognised, and at most `MAX_WIDTH` (720) units of recogniser input (a unit is 48 x 48 px,
about two characters; each batch's padding to its widest box is counted), about 1,600
characters: the largest text first (box heights within 25 % of each other are one size),
then top to bottom, left to right (`select_lines`). An invoice or a receipt is read whole
(a tighter bound, 32 boxes and 240 units, cut them at lines that depend on the picture's
size, so two copies of one document read different text); text past the bound is not
read, so `text:` does not find it. Measured on 2 busy cores, a page with a heading over 48
lines of small print (`tests.support.words.page`, 1477 units): 23 lines in 2.4 s instead of
all 49 in 5.4 s; a sign of two lines 0.35 to 0.45 s, every word read.

The engine is built on the first `read`, never on import, and is shared per process
(`reader()`): a decoding worker builds it once. RapidOCR and onnxruntime are optional; without
them `read` raises `OcrUnavailable`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from ..errors import SearchError
from .images import open_image

MAX_LINES = 96  # text boxes recognised in one picture at most
MAX_WIDTH = 720.0  # the recogniser's input width at most, in units of its 48 px height
SIZE_STEP = 1.25  # box heights within this ratio are one size of text (descenders add ~20 %)
REC_BATCH = 6  # boxes recognised together (rapidocr's default, pinned: the budget counts its padding)
REC_MIN_RATIO = 320 / 48  # the recogniser pads each batch to at least 320 px by 48

# Chosen by measurement on `tests.support.words` pictures (626 words, 20 to 72 px, decoded to
# 1024 px; 2 cores): the detector sees the picture at most 960 px on its longer side (word
# recall 0.989 at 0.26 s a picture; rapidocr's default, the shorter side enlarged to 736,
# 0.995 at 0.36 s; 640 px 0.986 at 0.20 s but weaker on small text); the 180-degree
# classifier is off (upside-down text is rare in photos, and it cost 7 to 10 % for nothing).
ENGINE_PARAMS: dict[str, Any] = {
    "Det.limit_type": "max",
    "Det.limit_side_len": 960,
    "Global.use_cls": False,
    "Global.text_score": 0.0,  # every line comes back; `MIN_CONFIDENCE` is applied here
    "Global.log_level": "error",  # its logger reports each model load, and each picture without text
    "Rec.rec_batch_num": REC_BATCH,
}
MIN_CONFIDENCE = 0.7  # lines of real words scored 0.91 or more; below 0.7, single-letter noise from shapes


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
            read = _recognise(self._engine, image.convert("RGB"))
        found = [(box, text.strip()) for box, text, score in read
                 if score >= self.min_confidence and text.strip()]
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


def check() -> None:
    """Raise `OcrUnavailable` unless the reader's packages import: before an index run starts,
    so that a missing one stops it before anything changes."""
    _packages()


def limit_threads(threads: int) -> None:
    """Run this process's reader on `threads` threads (a decoding worker: one, beside the
    model's); call before its first read."""
    ENGINE_PARAMS["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
    ENGINE_PARAMS["EngineConfig.onnxruntime.inter_op_num_threads"] = 1


class Line(NamedTuple):
    """A detected text box as the recogniser gets it: its crop's size in px (text upright),
    and the top-left corner of the box in the picture."""

    height: int
    width: int
    top: float
    left: float


def select_lines(lines: list[Line]) -> list[int]:
    """Indices of the boxes to recognise, largest text first: sizes are formed from the
    tallest box down, each holding the boxes within `SIZE_STEP` of its tallest; within a size,
    top to bottom, then left to right. A box is skipped when it would take the recogniser's
    input past `MAX_WIDTH`; at most `MAX_LINES` are kept."""
    size: dict[int, float] = {}  # box index -> minus the height of its size's tallest box
    tallest = 0.0
    for index in sorted(range(len(lines)), key=lambda i: -lines[i].height):
        if lines[index].height * SIZE_STEP <= tallest or not tallest:
            tallest = lines[index].height
        size[index] = -tallest
    kept: list[int] = []
    ratios: list[float] = []
    for index in sorted(range(len(lines)), key=lambda i: (size[i], lines[i].top, lines[i].left)):
        if len(kept) == MAX_LINES:
            break
        ratio = lines[index].width / max(lines[index].height, 1)
        if _input_width([*ratios, ratio]) <= MAX_WIDTH:
            kept.append(index)
            ratios.append(ratio)
    return kept


def _input_width(ratios: list[float]) -> float:
    """The recogniser's input width for crops of these width/height ratios, in units of its
    height: it sorts them, runs `REC_BATCH` at a time, and pads each batch to its widest."""
    ratios = sorted(ratios)
    batches = [ratios[start : start + REC_BATCH] for start in range(0, len(ratios), REC_BATCH)]
    return sum(len(batch) * max(REC_MIN_RATIO, batch[-1]) for batch in batches)


def _recognise(engine: Any, image: Image.Image) -> list[tuple[np.ndarray, str, float]]:
    """(box, text, score) for the boxes `select_lines` keeps: RapidOCR's own steps (as its
    `__call__` runs them, the classifier off), with the choice between detection and
    recognition. Boxes are (4, 2) corners in the detector's frame, enough to order lines."""
    from rapidocr.main import RapidOCRError

    picture, record = engine.preprocess_img(engine.load_img(image))
    try:
        crops, detected = engine.detect_and_crop(picture, record)
    except RapidOCRError:  # raised when no text box is found
        return []
    lines = [Line(crop.shape[0], crop.shape[1], float(box[:, 1].min()), float(box[:, 0].min()))
             for crop, box in zip(crops, detected.boxes, strict=True)]
    kept = select_lines(lines)
    if not kept:
        return []
    result = engine.recognize_txt([crops[index] for index in kept])
    return [(detected.boxes[index], text, score)
            for index, text, score in zip(kept, result.txts, result.scores, strict=True)]


def _packages() -> Any:
    try:
        import onnxruntime  # noqa: F401  (RapidOCR imports it only when a model first loads)
        from rapidocr import RapidOCR
    except ImportError as exc:
        raise OcrUnavailable(
            f"reading text in pictures needs rapidocr and onnxruntime ({exc}): "
            "pip install rapidocr onnxruntime, or index with --no-ocr"
        ) from None
    return RapidOCR


def _build_engine() -> Any:
    engine = _packages()
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # it logs every model load at INFO
    return engine(params=ENGINE_PARAMS)


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
