"""A video stream's clock and geometry (`Clip`), and which of its frames are decoded
(`Sampler`): keyframes, and a frame every `STEP` s in a long gap without one. The choices
are `video`'s docstring's."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator

import av
import numpy as np
from PIL import Image

from ..errors import VideoError

LONG_GAP = 5.0  # seconds without a keyframe after which frames are also taken every STEP s
STEP = 1.0
SPIKE = 4.0  # a packet over SPIKE times its gap's median and KEY_SHARE of the keyframe is taken for a cut
KEY_SHARE = 0.3
MIN_KEY_STEP = 0.5  # keyframes closer than this to the last one taken are skipped
_PENDING_BYTES = 64_000_000  # packets buffered in a gap before they are decoded whatever the gap


class Clip:
    """The stream's clock and geometry: frame times in seconds from its start, and frames
    as RGB images at most `max_side`, turned upright."""

    def __init__(self, stream: av.video.stream.VideoStream, max_side: int) -> None:
        self.tb = float(stream.time_base or 0) or 1 / 90_000
        self.start = stream.start_time  # in time_base; None: the first timestamp seen
        self.origin = (self.start or 0) * self.tb
        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise VideoError("no video stream (no frame size)")
        sar = float(stream.sample_aspect_ratio or 1) or 1.0  # anamorphic pixels are shown wider or narrower
        scale = min(1.0, max_side / max(width * sar, height))
        self.size = (max(1, round(width * sar * scale)), max(1, round(height * scale)))
        self.display, self.rotation = (round(width * sar), height), 0
        self.data_end: float | None = None  # where the last packet read ends

    @property
    def shown(self) -> tuple[int, int]:
        """(width, height) as displayed: turned a quarter, a portrait video shot on a phone is taller."""
        return self.display[::-1] if self.rotation % 180 else self.display

    def seconds(self, ts: int) -> float:
        if self.start is None:
            self.start = ts
        return (ts - self.start) * self.tb

    def time(self, frame: av.VideoFrame) -> float | None:
        ts = frame.pts if frame.pts is not None else frame.dts
        return None if ts is None else self.seconds(ts)

    def image(self, frame: av.VideoFrame) -> Image.Image:
        """The frame scaled by FFmpeg to `size` and turned by its display matrix (counter-clockwise)."""
        image = frame.to_image(width=self.size[0], height=self.size[1], interpolation="AREA")
        self.rotation = round((frame.rotation or 0) / 90) % 4 * 90
        return image.rotate(self.rotation, expand=True) if self.rotation else image


class Sampler:
    """Which packets are decoded and which frames are kept: the keyframes; in a gap of over
    `LONG_GAP` s without one, the first frame at or after every `STEP` s of it; in a shorter
    gap, the frame of any packet that looks like a cut the encoder coded without a keyframe
    (over `SPIKE` times the gap's median packet and `KEY_SHARE` of the keyframe)."""

    def __init__(self, stream: av.video.stream.VideoStream, clip: Clip, deadline: float,
                 limit_s: float) -> None:
        self.stream, self.clip, self.deadline, self.limit_s = stream, clip, deadline, limit_s
        self.pending: list[tuple[float, av.Packet]] = []  # the gap's packets not decoded yet
        self.pending_bytes, self.key_bytes = 0, 0
        self.gap_start: float | None = None  # the last keyframe decoded
        self.next_target = math.inf
        self.targets: deque[float] = deque()  # times wanted whose frames are not out yet
        self.keys: set[int] = set()  # timestamps of the keyframes decoded

    def frames(self, container: av.container.InputContainer) -> Iterator[tuple[float, av.VideoFrame]]:
        packets = container.demux(self.stream)
        while True:
            if time.monotonic() > self.deadline:
                raise VideoError(f"decoding took over {self.limit_s:g} s")
            try:
                packet = next(packets)
            except StopIteration:
                break
            except (av.FFmpegError, EOFError, OSError):
                break  # a damaged or cut file: what was decoded stands
            ts = packet.pts if packet.pts is not None else packet.dts
            if ts is None or not packet.size:
                continue  # the empty packet that ends the stream
            t = self.clip.seconds(ts)
            self.clip.data_end = max(self.clip.data_end or 0.0, t + (packet.duration or 0) * self.clip.tb)
            if packet.is_keyframe and (self.gap_start is None or t - self.gap_start >= MIN_KEY_STEP):
                yield from self._close_gap(t)
                self.keys.add(ts)
                self.gap_start, self.next_target, self.key_bytes = t, t + STEP, packet.size
                yield from self._decode(packet)
                continue
            if self.gap_start is None:
                self.gap_start, self.next_target = t, t  # no keyframe first: sample from here
            self.pending.append((t, packet))
            self.pending_bytes += packet.size
            if t - self.gap_start > LONG_GAP:
                yield from self._advance(t - STEP / 2)
            elif self.pending_bytes > _PENDING_BYTES:
                yield from self._send(len(self.pending))
        if self.clip.data_end is not None:
            yield from self._close_gap(self.clip.data_end, last=True)
        yield from self._decode(None)

    def _close_gap(self, end: float, last: bool = False) -> Iterator[tuple[float, av.VideoFrame]]:
        """The gap ends at `end` (a keyframe; the end of the video when `last`): decode what it
        needs, drop the rest. No steady target just before a keyframe, which is taken anyway."""
        if self.gap_start is not None and end - self.gap_start > LONG_GAP:
            yield from self._advance(end - (1e-3 if last else STEP / 2))
        elif self.pending:
            median = float(np.median([p.size for _, p in self.pending]))
            floor = max(SPIKE * median, KEY_SHARE * self.key_bytes)
            self.targets.extend(sorted(t for t, p in self.pending if p.size > floor))
            yield from self._advance(-math.inf)
        self.pending, self.pending_bytes = [], 0

    def _advance(self, upto: float) -> Iterator[tuple[float, av.VideoFrame]]:
        """Want the steady targets up to `upto`; decode the packets the last target needs."""
        while self.next_target <= upto:
            self.targets.append(self.next_target)
            self.next_target += STEP
        if not self.targets or not self.pending:
            return
        times = [t for t, _ in self.pending]
        bound = min((t for t in times if t >= self.targets[-1] - 1e-3), default=self.targets[-1])
        yield from self._send(max((i + 1 for i, t in enumerate(times) if t <= bound + 1e-3), default=0))

    def _send(self, count: int) -> Iterator[tuple[float, av.VideoFrame]]:
        for _, packet in self.pending[:count]:
            self.pending_bytes -= packet.size
            yield from self._decode(packet)
        del self.pending[:count]

    def _decode(self, packet: av.Packet | None) -> Iterator[tuple[float, av.VideoFrame]]:
        """Decode `packet` (None: drain the decoder); yield the frames out of it that are wanted."""
        try:
            frames = self.stream.decode(packet)
        except (av.FFmpegError, EOFError):
            return  # a damaged packet: the decoder goes on from the next keyframe
        for frame in frames:
            t = self.clip.time(frame)
            if t is None:
                continue
            wanted = bool(self.targets) and t >= self.targets[0] - 1e-3
            while self.targets and self.targets[0] <= t + 1e-3:
                self.targets.popleft()
            if wanted or (frame.pts if frame.pts is not None else frame.dts) in self.keys:
                yield t, frame
