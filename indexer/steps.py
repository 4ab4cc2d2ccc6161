"""The indexing steps every driver runs, after `plan`:

    decode(file)                    pixels, size, date, thumbnail (and text), or why it cannot be read;
                                    a video's moments, each with those (`decode_video`)
    embed(engine, files)            vectors (float16, as stored) and captions for a batch
    apply_plan, commit, finish      the changes, through the collection, counted in a summary

Every file is one `ImageFile` from the scan to the commit. The drivers (`pipeline`: this
process with decoding workers; `ray`: a Ray cluster) walk the folders and run these steps.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import numpy as np

from search.errors import ImageError
from search.media import video
from search.media.images import load_image
from search.media.picturehash import picture_hash
from search.records import ImageFile, moment_path
from search.schemas import FileError, IndexSummary
from search.store import thumbnails

log = logging.getLogger("blip2_search")
HEAD_BYTES = 32  # what tells a video by its content (`media.video.looks_like_video`)
FEATURE_SIDES = {True: ("retrieval", "generation"), False: ("retrieval",)}  # by whether captions run

if TYPE_CHECKING:  # decoding workers import this module: it stays light (no FAISS, no SQLAlchemy)
    from search.collection import Collection

    from .plan import Plan


def decode(file: ImageFile, data: bytes | None = None, *, ocr: bool = False) -> ImageFile:
    """Fill `file`'s picture, dimensions, date and thumbnail, or its error; `data`: the
    file's bytes when they are already in memory (its path then only names it); with `ocr`,
    the text written in the picture when `file` has none yet (`search.media.ocr`, on the decoded
    picture, whose `WORKING_SIDE` serves it). Returns it; a file the plan could not read
    keeps its error."""
    if file.error is not None:
        return file
    if is_video(file.path, data):
        return decode_video(file, data, ocr=ocr)
    loaded = _attempt(file, load_image, data, "cannot decode")
    if loaded is None:
        return file
    file.image, file.taken_at, file.thumbnail = loaded.image, loaded.taken_at, thumbnails.make(loaded.image)
    file.width, file.height = loaded.size  # the picture's own, not the reduced one handed on
    file.picture_hash = picture_hash(loaded.image)
    if ocr and file.text is None:
        file.text = read_text(loaded.image)
    return file


def _attempt(file: ImageFile, load, data: bytes | None, failing: str):
    """`load` of the file (its bytes `data` when given), or None with the file's error set:
    the decoder's reason, or for a decoder bug `failing` and the exception (it must not stop
    the run)."""
    try:
        return load(file.path if data is None else io.BytesIO(data))
    except ImageError as exc:
        file.error = str(exc)
    except Exception as exc:
        file.error = f"{failing}: {type(exc).__name__}: {exc}"
    return None


def is_video(path: str, data: bytes | None = None) -> bool:
    """Whether the file holds a video (by its first bytes, like images: `media.video`)."""
    if data is not None:
        return video.looks_like_video(data[:HEAD_BYTES])
    try:
        with open(path, "rb") as handle:
            return video.looks_like_video(handle.read(HEAD_BYTES))
    except OSError:
        return False


def decode_video(file: ImageFile, data: bytes | None = None, *, ocr: bool = False) -> ImageFile:
    """Fill a video's duration, size, date and thumbnail, and its moments (`media.video`),
    each an `ImageFile` with its span, picture, thumbnail, picture hash (and with `ocr` its
    text); or the video's error. Decoding is bounded in time and memory (`load_video`)."""
    found = _attempt(file, video.load_video, data, "cannot decode the video")
    if found is None:
        return file
    file.media, file.start_s, file.end_s = "video", 0.0, found.duration
    file.width, file.height, file.taken_at = found.width, found.height, found.taken_at
    file.moments = [ImageFile(path=moment_path(file.path, file.content_hash, moment.start), size=0,
                              mtime=file.mtime, root=file.root,
                              content_hash=f"{file.content_hash}@{moment.start:.3f}",
                              image=moment.image, width=moment.image.width, height=moment.image.height,
                              taken_at=found.taken_at, thumbnail=thumbnails.make(moment.image),
                              picture_hash=moment.picture_hash, media="video", start_s=moment.start,
                              end_s=moment.end, frame_s=moment.frame, of=file.path,
                              text=read_text(moment.image) if ocr else None)
                    for moment in found.moments]
    file.thumbnail, file.picture_hash = file.moments[0].thumbnail, file.moments[0].picture_hash
    return file


def read_text(image) -> str | None:
    """The text written in `image`; None when the reader fails on it (a later run tries
    again). Imported here, not above: a run without OCR never loads its models."""
    from search.media.ocr import OcrUnavailable, reader

    try:
        return reader().read(image)
    except OcrUnavailable:
        raise
    except Exception as exc:  # a reader bug on one picture must not stop the run
        log.warning("could not read the text in an image: %s: %s", type(exc).__name__, exc)
        return None


def embed(engine, files: list[ImageFile], *, captions: bool, features: bool = False,
          size: int | None = None) -> None:
    """Vectors (float16, as the catalog stores them) and captions for the decoded files (a
    video's: for its moments), in batches of `size` pictures (None: one), and with
    `features` the encoder output both used; each picture is dropped once used. A video
    takes its first moment's caption."""
    readable = [picture for file in files for picture in file.pictures]
    size = size or max(1, len(readable))
    for start in range(0, len(readable), size):
        _embed(engine, readable[start : start + size], captions=captions, features=features)
    for file in files:
        if file.moments:
            file.caption = file.moments[0].caption


def _embed(engine, readable: list[ImageFile], *, captions: bool, features: bool) -> None:
    batch = engine.encode([file.image for file in readable])
    vectors = engine.embed_images(batch).astype(np.float16)  # (B, Q, D)
    texts = engine.caption(batch) if captions else [None] * len(readable)
    kept = engine.features(batch, FEATURE_SIDES[captions]) if features else [None] * len(readable)
    for file, vector, text, stored in zip(readable, vectors, texts, kept, strict=True):
        file.vectors, file.caption, file.features, file.image = vector, text, stored, None


def features_of(engine, files: dict[int, ImageFile]) -> dict[int, dict]:
    """The stored features (`search.store.features`, by side) of the decoded ones of `files`
    (by id), with no other model work; a file no longer readable has none."""
    readable = {image_id: file for image_id, file in files.items() if file.image is not None}
    if not readable:
        return {}
    kept = engine.features([file.image for file in readable.values()], FEATURE_SIDES[True])
    return dict(zip(readable, kept, strict=True))



def apply_plan(collection: Collection, root_plan: Plan, summary: IndexSummary) -> None:
    """Everything that needs no model: unchanged, touched, moved and duplicate files, and
    thumbnails made again from their files."""
    summary.unchanged += len(root_plan.unchanged) + len(root_plan.touched)
    summary.errors += [FileError(path=folder, error=why) for folder, why in root_plan.unreadable]
    for record in root_plan.thumbnails:
        collection.thumbnail(record)
    if root_plan.touched:
        collection.touch([(record.id, file) for record, file in root_plan.touched])
    for record, file in root_plan.moved:
        collection.move(record.id, file)
        summary.moved += 1
    for twin, file in root_plan.copied:
        collection.copy(twin, file)
        summary.added += 1


def commit(collection: Collection, files: list[ImageFile], summary: IndexSummary) -> None:
    """One batch of embedded (or failed) files into the collection, counted."""
    collection.commit(files)
    for file in files:
        if file.status == "failed":
            summary.failed += 1
            summary.errors.append(FileError(path=file.path, error=file.error or "not embedded"))
        elif file.is_update:
            summary.updated += 1
        else:
            summary.added += 1
        for picture in file.moments or [file]:
            summary.features += bool(picture.vectors is not None and picture.features)
            summary.text += bool(picture.vectors is not None and picture.text is not None)


def finish(collection: Collection, plans: list[Plan], summary: IndexSummary) -> None:
    """Drop the files that vanished from the roots, then save the vector snapshot."""
    for root_plan in plans:
        collection.remove(record.id for record in root_plan.removed)
        summary.removed += len(root_plan.removed)
    collection.save()
