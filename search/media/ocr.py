"""Text in pictures: `TextReader` reads it with RapidOCR (PP-OCR detection and recognition
models, inside its wheel, on onnxruntime); `textmatch` finds what users type in it.

The engine is built on the first `read`, never on import, and is shared per process
(`reader()`): a decoding worker builds it once. RapidOCR and onnxruntime are optional; without
them `read` raises `OcrUnavailable`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import SearchError
from .images import open_image

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


def check() -> None:
    """Raise `OcrUnavailable` unless the reader's packages import: before an index run starts,
    so that a missing one stops it before anything changes."""
    _packages()


def limit_threads(threads: int) -> None:
    """Run this process's reader on `threads` threads (a decoding worker: one, beside the
    model's); call before its first read."""
    ENGINE_PARAMS["EngineConfig.onnxruntime.intra_op_num_threads"] = threads
    ENGINE_PARAMS["EngineConfig.onnxruntime.inter_op_num_threads"] = 1


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
