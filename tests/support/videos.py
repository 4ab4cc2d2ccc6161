"""Generated videos with known shots, for the video reader (`search.media.video`).

`corpus(folder)` writes seeded videos of the shapes world (`demo.shapes`), each a few shots
of a few seconds in MP4 (H.264), WebM (VP9), MKV or AVI (MPEG-4 Part 2), some with fades
through black between shots and some with a one-second black opening, and returns where each
shot is and what its caption says. The pictures of adjacent shots are drawn apart by their
picture hashes, so that a reader that keeps shots apart can be checked exactly. Small frames
(320 x 240) at 10 frames a second keep the whole corpus a few seconds to write.

Also: `truncated` (the first part of a file's bytes), `reencode` (another codec and size,
every frame decoded and encoded again) and `black_opening_pair` (two different videos that
open on the same two seconds of black), for tests of damaged files and of duplicates.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from demo.shapes import render
from search.media import picturehash

SIZE = (256, 256)  # square, as the demo world is drawn: no bars for the model to see
FPS = 10
APART = 20  # adjacent shots' pictures differ by more than this many hash bits (of 32)
ENCODERS = {  # container -> (codec, options)
    ".mp4": ("libx264", {"preset": "veryfast"}),  # scenecut on: a keyframe at each cut
    ".mov": ("libx264", {"preset": "veryfast"}),
    ".webm": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "30", "b": "0"}),
    ".mkv": ("mpeg4", {"qscale": "3"}),
    ".avi": ("mpeg4", {"qscale": "3"}),
}


@dataclass(frozen=True)
class Shot:
    start: float  # seconds: its first visible frame (after a black opening; its fade-in's first)
    end: float  # seconds: where the next shot's first visible frame is (its own fade-out included)
    caption: str
    picture: Image.Image | None = field(default=None, compare=False)  # the frame as shown, RGB


@dataclass(frozen=True)
class GeneratedVideo:
    path: Path
    shots: list[Shot]
    container: str  # ".mp4", ".webm", ...
    black_opening: float  # seconds of black before the first shot
    fade: float = 0.0  # seconds of each fade through black between shots (half out, half in)

    def bright(self, shot: Shot) -> float:
        """When `shot` is first shown at full brightness (after its fade-in)."""
        return shot.start + (self.fade / 2 if shot is not self.shots[0] else 0.0)


def framed(picture: Image.Image, size: tuple[int, int] = SIZE) -> Image.Image:
    """`picture` scaled to fit `size` and centred on black: a frame as the video shows it."""
    scale = min(size[0] / picture.width, size[1] / picture.height)
    fitted = picture.convert("RGB").resize((max(1, round(picture.width * scale)),
                                            max(1, round(picture.height * scale))), Image.Resampling.LANCZOS)
    frame = Image.new("RGB", size)
    frame.paste(fitted, ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return frame


def write_video(path: Path, pictures: list[tuple[Image.Image, float]], *, fps: int = FPS,
                size: tuple[int, int] = SIZE, codec: str | None = None, fade_s: float = 0.0,
                black_opening_s: float = 0.0) -> list[tuple[float, float]]:
    """Write each picture for its seconds (framed into `size`), with an optional black
    opening and an optional fade through black between shots, `fade_s` long (the first half
    darkens the shot ending, the second brightens the next one). Returns each shot's
    (start, end) as shown: from its first visible frame (the first, dim, of its fade-in: a
    reader's moment starts there) to the next shot's (the last: the end of the video), so the
    shots tile the video after its black opening. Full brightness comes `fade_s / 2` after
    the start. `codec` defaults to the container's."""
    name, options = ENCODERS[path.suffix] if codec is None else (codec, {})
    half = round(fade_s * fps / 2)
    frames: list[tuple[np.ndarray, float]] = [(np.zeros((size[1], size[0], 3), np.uint8), 0.0)] * round(
        black_opening_s * fps)
    spans = []
    for i, (picture, seconds) in enumerate(pictures):
        pixels = np.asarray(framed(picture, size))
        fade_in = half if i else 0
        spans.append(len(frames))
        frames += [(pixels, (k + 1) / (fade_in + 1)) for k in range(fade_in)]
        frames += [(pixels, 1.0)] * round(seconds * fps)
        fade_out = half if i < len(pictures) - 1 else 0
        frames += [(pixels, 1 - (k + 1) / (fade_out + 1)) for k in range(fade_out)]
    ends = spans[1:] + [len(frames)]
    _encode(path, ((p if level == 1 else (p * level).astype(np.uint8)) for p, level in frames),
            name, options, fps, size)
    return [(start / fps, end / fps) for start, end in zip(spans, ends, strict=True)]


def _encode(path: Path, frames, codec: str, options: dict[str, str], fps: int | Fraction,
            size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = dict(options)
        for pixels in frames:
            is_frame = isinstance(pixels, av.VideoFrame)
            container.mux(stream.encode(pixels if is_frame else av.VideoFrame.from_ndarray(pixels, "rgb24")))
        container.mux(stream.encode(None))


def corpus(folder: Path, *, seed: int = 7, count: int = 8) -> list[GeneratedVideo]:
    """`count` videos of 3 to 5 shots of 2 to 6 s, in turn MP4, WebM, MKV and AVI; every
    other one with 1 s fades, every third with a 1 s black opening. No caption is used
    twice in the corpus, so a caption names one video and one shot."""
    rng = random.Random(seed)
    containers = (".mp4", ".webm", ".mkv", ".avi")
    used: set[str] = set()
    videos = []
    for i in range(count):
        container = containers[i % len(containers)]
        fade, opening = (1.0 if i % 2 else 0.0), (1.0 if i % 3 == 1 else 0.0)
        samples = distinct_pictures(rng, rng.randint(3, 5), used)
        pictures = [(sample.image, round(rng.uniform(2, 6), 1)) for sample in samples]
        path = folder / f"video{i:02d}{container}"
        spans = write_video(path, pictures, fade_s=fade, black_opening_s=opening)
        shots = [Shot(start, end, s.caption, framed(s.image))
                 for (start, end), s in zip(spans, samples, strict=True)]
        videos.append(GeneratedVideo(path, shots, container, opening, fade))
    return videos


def distinct_pictures(rng: random.Random, count: int, used: set[str]):
    """`count` samples of the shapes world with captions not in `used` (which they join),
    each drawn over `APART` hash bits from the one before it, and each with a stable picture
    hash (`_stable`), so that tests can tell a shot by its hash."""
    samples: list = []
    while len(samples) < count:
        sample = render(rng, side=SIZE[1], soft=True)
        if sample.caption in used or not _stable(framed(sample.image)):
            continue
        if samples and picturehash.distance(_hash(sample.image), _hash(samples[-1].image)) <= APART:
            continue
        used.add(sample.caption)
        samples.append(sample)
    return samples


def _stable(frame: Image.Image, bits: int = 4) -> bool:
    """Whether the frame's picture hash stays within `bits` when the frame is encoded lossily
    (JPEG at quality 40: chroma halved, blocks) or dimmed to half its light. A frame of two
    colours close in hue on black bars is not: its main colour axis turns."""
    buffer = io.BytesIO()
    frame.save(buffer, format="JPEG", quality=40)
    lossy, dim = Image.open(buffer).convert("RGB"), Image.eval(frame, lambda v: v // 2)
    reference = picturehash.picture_hash(frame)
    return all(picturehash.distance(reference, picturehash.picture_hash(c)) <= bits for c in (lossy, dim))


def _hash(picture: Image.Image) -> int:
    return int(picturehash.picture_hash(framed(picture)))


def truncated(source: Path, dest: Path, fraction: float = 0.5) -> Path:
    """`dest`: the first `fraction` of `source`'s bytes, as a download cut short leaves it."""
    data = source.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def reencode(source: Path, dest: Path, *, size: tuple[int, int] | None = None, codec: str = "mpeg4",
             container: str = ".mkv") -> Path:
    """Every frame of `source` decoded and encoded again with `codec` (at `size`: its own by
    default) into `dest` with the suffix `container`: a copy a duplicate finder should
    recognise."""
    out = dest.with_suffix(container)
    with av.open(str(source)) as reader:
        stream = reader.streams.video[0]
        rate = stream.average_rate or FPS
        width, height = size or (stream.codec_context.width, stream.codec_context.height)
        frames = [f.reformat(width=width, height=height, format="yuv420p") for f in reader.decode(stream)]
    for index, frame in enumerate(frames):
        frame.pts, frame.time_base = index, 1 / Fraction(rate)  # numbered again, a frame a tick
    known, options = ENCODERS.get(container, (None, {}))
    _encode(out, frames, codec, options if known == codec else {}, rate, (width, height))
    return out


def black_opening_pair(folder: Path, *, seed: int = 11) -> tuple[Path, Path]:
    """Two different MP4 videos (two shots each, no picture in common) that both open on the
    same 2 s of black: what a reader that hashed the first frame would call duplicates."""
    rng = random.Random(seed)
    samples = distinct_pictures(rng, 4, set())
    paths = []
    for i, pair in enumerate((samples[:2], samples[2:])):
        path = folder / f"black_opening_{i}.mp4"
        write_video(path, [(s.image, 3.0) for s in pair], black_opening_s=2.0)
        paths.append(path)
    return paths[0], paths[1]
