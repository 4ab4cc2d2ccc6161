"""Videos as moments: the shots a video is made of, each with one frame to index.

`load_video(path)` cuts a video into `Moment`s (a start, an end, a representative frame).
Choices, measured with `benchmarks/video_decode.py` (a minute of H.264 cut every 2 to 6 s
reads in about 0.6 s at 720p and 1 s at 1080p on two cores; its keyframes alone, 0.2 and 0.5):

- Keyframes start shots: encoders put one at each cut (x264's scenecut) and it decodes on
  its own. Packets are read in order and only those needed reach the decoder. Keyframes
  closer than `MIN_KEY_STEP` to the last one taken are skipped (MJPEG: every frame is one).
- In a gap of over `LONG_GAP` s without a keyframe (a long take, an encoder without scene
  cuts) a frame is also taken every `STEP` s. Such a frame costs every frame back to the
  keyframe, so the gap's packets wait until the gap is known long, then are decoded only up
  to the last frame wanted. A shorter gap is decoded only up to a packet that looks like a
  cut coded without a keyframe (`SPIKE`, `KEY_SHARE`). Sampling every gap over 2 s each 1 s
  would decode nearly every frame: 1.6 s a minute at 720p, 3.1 s at 1080p.
- Frames are scaled by FFmpeg straight to at most `max_side` (no full-size RGB copy).
- A frame within `JOIN_DISTANCE` (picture hash) of the previous kept one, or of the same
  pixels but for their light (`SAME_PIXELS`: a fade), continues its moment. Blank frames
  (every colour channel of a 32 x 32 thumbnail varies by under `BLANK_STD`: a black
  opening, the depth of a fade) are dropped unless all are (then one moment at 0). A
  moment's representative is its frame of highest contrast, so never a fade's dim one. A
  moment starts at its first sampled frame that is not blank.
- The budget: at most `per_minute` moments a minute (at least one) and `memory_bytes` of
  representatives (w x h x 3 each, kept while decoding too). While over, the adjacent pair
  with the closest representatives merges: the later start is dropped, the frame of higher
  contrast stays.
The sampling is `video_frames`, the gathering into moments `video_moments`.

- Failures are `VideoError`s with a one-line reason. A truncated file gives what decoded
  before the cut, its duration where its data ends; decoding stops after `time_limit_s`.
"""

from __future__ import annotations

import errno
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import av
from PIL import Image

from ..errors import VideoError, describe
from .video_frames import Clip, Sampler
from .video_moments import JOIN_DISTANCE, Moment, Moments

__all__ = ["JOIN_DISTANCE", "PER_MINUTE", "VIDEO_SUFFIXES", "Moment", "Video", "VideoError", "frame_at",
           "load_video", "looks_like_video"]

VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"}
PER_MINUTE = 30  # at most this many moments a minute of video
FRAME_AT_LIMIT_S = 30.0  # wall time `frame_at` may take
_IMAGE_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis", b"hevc", b"hevx"}
_SYSTEM_REASONS = {errno.ENOENT: "file not found", errno.EISDIR: "is a directory",
                   errno.EACCES: "permission denied"}
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}



@dataclass(frozen=True)
class Video:
    duration: float
    width: int  # as displayed (rotation and pixel aspect applied)
    height: int
    taken_at: datetime | None  # the container's or stream's creation_time, naive local time
    moments: list[Moment]  # in time order; never empty


def looks_like_video(head: bytes) -> bool:
    """Whether the first bytes of a file are those of a video container: MP4/MOV/M4V (an
    ISO-BMFF `ftyp` box whose brand is not a still-image one: AVIF and HEIC share the box),
    old QuickTime (a `moov`, `mdat`, `wide` or `free` atom first), WebM/MKV (EBML) or AVI."""
    if head[4:8] == b"ftyp":
        return len(head) >= 12 and head[8:12] not in _IMAGE_BRANDS
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return True
    return head[4:8] in _QUICKTIME_ATOMS


def load_video(path: str | Path | BinaryIO, *, max_side: int = 640, per_minute: int = PER_MINUTE,
               time_limit_s: float = 120.0, memory_bytes: int = 256_000_000) -> Video:
    """Decode `path` into its moments (see the module's docstring), or raise `VideoError`."""
    deadline = time.monotonic() + time_limit_s
    with _opened(path) as (container, stream):
        clip, moments, last = Clip(stream, max_side), Moments(memory_bytes), None
        for last, frame in Sampler(stream, clip, deadline, time_limit_s).frames(container):
            moments.add(last, clip.image(frame))
        if last is None:
            raise VideoError("cannot decode the video: no frame could be decoded")
        duration, end = _duration(container, stream), max(last, clip.data_end or 0.0)
        if duration is None or end < duration - 1.0:
            duration = end  # unknown, or the data ends early: a truncated file
        limit = max(1, math.ceil(duration / 60 * per_minute))
        return Video(duration, *clip.shown, _taken_at(container, stream), moments.finish(limit, duration))


def frame_at(path: str | Path | BinaryIO, time_s: float, *, max_side: int = 1024) -> Image.Image:
    """The frame shown at `time_s` seconds (the last one starting at or before it), decoded
    from the keyframe before it. `VideoError` when `time_s` is outside the video."""
    deadline = time.monotonic() + FRAME_AT_LIMIT_S
    with _opened(path) as (container, stream):
        duration = _duration(container, stream)
        if not time_s >= 0 or (duration is not None and time_s > duration + 1e-3):
            raise VideoError(f"{time_s:g} s is outside the video (0 to {duration or 0:.2f} s)")
        clip = Clip(stream, max_side)
        for back in (0.0, 2.0, time_s):  # a seek that lands after `time_s` (a B-frame delay): earlier
            shown, shown_t = _shown(container, stream, clip, time_s, max(0.0, time_s - back), deadline)
            if shown is not None:
                break
        if shown is None or time_s - shown_t > 1.0:  # the pictures end early (a cut file, a longer sound)
            raise VideoError(f"no frame at {time_s:g} s")
        return clip.image(shown)


def _shown(container: av.container.InputContainer, stream: av.video.stream.VideoStream, clip: Clip,
           time_s: float, seek_s: float, deadline: float) -> tuple[av.VideoFrame | None, float]:
    """The last frame at or before `time_s` and its time, decoding on from the keyframe
    before `seek_s` (None: the first frame decoded comes after `time_s`)."""
    try:
        container.seek(int((clip.origin + seek_s) / clip.tb), stream=stream, backward=True)
    except av.FFmpegError:
        pass  # not seekable (a file cut short, no index): decoded from where it is, the start
    shown, shown_t = None, -math.inf
    for frame in container.decode(stream):
        if time.monotonic() > deadline:
            raise VideoError(f"decoding took over {FRAME_AT_LIMIT_S:g} s")
        t = clip.time(frame)
        if t is not None and t > time_s + 1e-3:
            break
        if t is not None:
            shown, shown_t = frame, t
    return shown, shown_t


@contextmanager
def _opened(path: str | Path | BinaryIO) -> Iterator[tuple[av.container.InputContainer,
                                                          av.video.stream.VideoStream]]:
    """The container and its main video stream (from a path or a seekable file object); every
    failure inside becomes a `VideoError`."""
    named = isinstance(path, str | os.PathLike)
    if named and os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        raise VideoError("not a regular file (a pipe, a device or a socket)")  # opening a pipe waits for ever
    try:
        with av.open(os.fspath(path) if named else path, metadata_errors="ignore") as container:
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                raise VideoError("a still image, not a video")  # FFmpeg reads a PNG as one frame
            streams = [s for s in container.streams.video
                       if not s.disposition & av.stream.Disposition.attached_pic]  # not cover art
            if not streams:
                raise VideoError("no video stream")
            stream = max(streams, key=lambda s: (s.codec_context.width or 0) * (s.codec_context.height or 0))
            stream.thread_type = "AUTO"
            yield container, stream
    except VideoError:
        raise
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(_unreadable(path, exc)) from None
    except EOFError:
        raise VideoError("truncated video: the file ends before its data") from None
    except Exception as exc:  # anything else a damaged file provokes
        raise VideoError(f"cannot decode the video: {describe(exc)}") from None


def _unreadable(path: str | Path | BinaryIO, exc: OSError | av.FFmpegError) -> str:
    """Why a file cannot be opened, in a line: the system's reason, or what is wrong with the file."""
    if exc.errno in _SYSTEM_REASONS:
        return _SYSTEM_REASONS[exc.errno]
    try:
        with open(path, "rb") if isinstance(path, str | os.PathLike) else nullcontext(path) as file:
            file.seek(0)
            head = file.read(32)
            if head[4:8] == b"ftyp" and not _has_moov(file):
                return "truncated video: no moov atom (its index), the file was cut short"
    except (OSError, ValueError):
        pass
    return f"cannot decode the video: {exc.strerror or describe(exc)}"


def _has_moov(file: BinaryIO) -> bool:
    """Whether an MP4/MOV file's top-level boxes hold a whole `moov` (the index players need)."""
    size, offset, header = file.seek(0, os.SEEK_END), 0, b"........"
    while len(header) >= 8:
        file.seek(offset)
        header = file.read(16)
        length = int.from_bytes(header[:4], "big") if len(header) >= 8 else 0
        length = int.from_bytes(header[8:16], "big") if length == 1 else length or size - offset
        if header[4:8] == b"moov" or length < 8:
            return header[4:8] == b"moov" and offset + length <= size
        offset += length
    return False


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Seconds, from the container, else the stream; None when neither says."""
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration and stream.duration > 0 and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _taken_at(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> datetime | None:
    """When the video was shot, as naive local time: Apple's creation date (local, with its
    offset) as written, else `creation_time` (UTC) in this machine's time zone."""
    for metadata in (container.metadata, stream.metadata):
        for key in ("com.apple.quicktime.creationdate", "creation_time"):
            try:
                value = datetime.fromisoformat(str(metadata.get(key, "")).strip().replace("Z", "+00:00"))
            except ValueError:
                continue
            if value.year <= 1970:
                continue  # an unset date (0 seconds since 1904 or 1970)
            if value.tzinfo is not None:
                value = value.replace(tzinfo=None) if key.startswith("com.apple") else value.astimezone()
            return value.replace(tzinfo=None)
    return None
