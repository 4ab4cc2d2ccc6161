"""How long `search.media.video.load_video` takes on a minute of 720p or 1080p H.264.

The input: a synthetic 16:9 video at 25 fps, cut every 2 to 6 s (seeded), each shot a
shapes-world picture scaled up with a texture of its own (so that intra coding is not
trivially cheap and x264's scene-cut detection fires at the cuts), panning slowly and with a
little noise that changes every frame (about 0.4 Mbit/s at 720p). It is encoded with libx264's
default keyframe settings (keyint 250, scenecut 40, B-frames) at the `veryfast` preset: the
`ultrafast` preset would be quicker to write but turns scene-cut detection off, which is
what the reader relies on. Reported: the best of three wall times of `load_video`, per
minute of video, and the moments it found per minute.

    python -m benchmarks.video_decode
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

from demo.shapes import render
from search.media.video import load_video

FPS = 25
TEXTURE = 12  # +- grey levels of each shot's own texture
NOISE = 2  # +- grey levels of the noise that changes every frame
PAN = 1  # pixels a frame the picture moves (a slow pan: 25 px a second)


def write_synthetic(path: Path, height: int, seconds: float = 60.0, seed: int = 1) -> list[float]:
    """Write the synthetic video; returns the times of its cuts (the first at 0)."""
    width = round(height * 16 / 9) // 2 * 2
    rng, noise_rng = random.Random(seed), np.random.default_rng(seed)
    noises = [noise_rng.integers(-NOISE, NOISE + 1, size=(height, width), dtype=np.int16) for _ in range(5)]
    total, written, cuts = round(seconds * FPS), 0, []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast"}
        while written < total:
            cuts.append(written / FPS)
            base = _shot_planes(render(rng, side=256).image, width, height, noise_rng)
            for i in range(min(round(rng.uniform(2, 6) * FPS), total - written)):
                planes = np.roll(base, i * PAN, axis=1)
                planes[:height] += noises[i % len(noises)]
                frame = av.VideoFrame.from_ndarray(np.clip(planes, 0, 255).astype(np.uint8), format="yuv420p")
                container.mux(stream.encode(frame))
                written += 1
        container.mux(stream.encode(None))
    return cuts


def _shot_planes(picture: Image.Image, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """The picture scaled to the frame as yuv420p planes (int16), its luma textured."""
    scaled = picture.resize((width, height), Image.Resampling.BILINEAR)
    planes = av.VideoFrame.from_image(scaled).reformat(format="yuv420p").to_ndarray().astype(np.int16)
    coarse = rng.integers(-TEXTURE, TEXTURE + 1, size=(height // 4, width // 4)) + 128
    texture = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.Resampling.BILINEAR)
    planes[:height] += np.asarray(texture, dtype=np.int16) - 128
    return planes


def decode_seconds_per_minute(height: int, seconds: float = 60.0, *, scratch: Path | None = None) -> dict:
    """Write `seconds` of synthetic video `height` pixels high into `scratch` (a temporary
    folder by default) and time `load_video` on it, best of three."""
    with tempfile.TemporaryDirectory() as temporary:
        path = Path(scratch or temporary) / f"synthetic_{height}p.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        cuts = write_synthetic(path, height, seconds)
        written_s = time.perf_counter() - started
        best, moments = float("inf"), 0
        for _ in range(3):
            started = time.perf_counter()
            video = load_video(path)
            best, moments = min(best, time.perf_counter() - started), len(video.moments)
    minutes = seconds / 60
    return {"height": height, "decode_s_per_min": round(best / minutes, 3),
            "moments_per_min": round(moments / minutes, 1), "cuts_per_min": round(len(cuts) / minutes, 1),
            "write_s": round(written_s, 1)}


if __name__ == "__main__":
    for height in (720, 1080):
        print(decode_seconds_per_minute(height))  # noqa: T201
