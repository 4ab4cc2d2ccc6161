"""Sampled frames gathered into moments within a budget (`Moments`): the choices are
`video`'s docstring's."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import picturehash

JOIN_DISTANCE = 12  # hash bits at or under which a frame continues the moment: on the test corpus
# two encodings of a picture differ by up to 10, adjacent shots by 22 or more
SAME_PIXELS = 3.0  # mean difference (0-255) of 32 x 32 thumbnails, one scaled to the other's light,
# under which a frame continues the moment too
_DIM_SHARE, _DIM_JOIN = 0.5, 20  # a frame under this share of a neighbour's light may be a fade's: it
# joins the neighbour whose hash is closer, if under _DIM_JOIN bits (a dimmed picture differs by up to 18)
BLANK_STD = 6.0  # standard deviation (0-255) of every colour channel under which a frame is blank


@dataclass(frozen=True)
class Moment:
    start: float  # seconds: the first sampled frame of the shot
    end: float  # seconds: the next moment's start (the last one's: the duration)
    image: Image.Image  # the representative frame, RGB, longer side <= max_side
    picture_hash: int  # picturehash.picture_hash(image)
    frame: float  # seconds: when `image` is shown (`frame_at(path, frame)` decodes it again)


@dataclass
class _Open:
    """A moment being built (or one sampled frame): its start, its best frame so far and the
    thumbnail, hash and mean light of its last frame."""

    start: float
    image: Image.Image
    contrast: float  # the largest standard deviation of a colour channel of its thumbnail
    hash: int
    frame: float  # when the image is shown
    last: np.ndarray  # the 32 x 32 thumbnail of its last frame (float32 RGB)
    last_hash: int
    last_light: float  # the thumbnail's mean (0-255)

    def join(self, other: _Open) -> None:
        """Take in `other` (later): its frame when it has more contrast (a fade's dim frames lose)."""
        self.last, self.last_hash, self.last_light = other.last, other.last_hash, other.last_light
        if other.contrast > self.contrast:
            self.image, self.contrast = other.image, other.contrast
            self.hash, self.frame = other.hash, other.frame


class Moments:
    """Sampled frames in time order, gathered into moments within the budget. Each frame is
    placed when the next one is known (a fade's dim frame goes with the neighbour it is like)."""

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self.open: list[_Open] = []
        self.first_blank: _Open | None = None
        self.held: _Open | None = None  # the last frame, placed when the next one comes
        self.bound = False  # the next frame placed continues the last moment whatever it looks like

    def add(self, t: float, image: Image.Image) -> None:
        """Take the frame shown at `t` s: blank ones are dropped, the others placed in turn."""
        thumbnail = np.asarray(image.resize((32, 32), Image.Resampling.BOX), dtype=np.float32)
        contrast = float(thumbnail.reshape(-1, 3).std(axis=0).max())
        h = picturehash.picture_hash(image)
        frame = _Open(t, image, contrast, h, t, thumbnail, h, float(thumbnail.mean()))
        if contrast < BLANK_STD:
            if self.first_blank is None:
                self.first_blank, frame.start = frame, 0.0
            return
        if self.held is not None:
            self._place(self.held, frame)
        self.held = frame

    def _place(self, frame: _Open, following: _Open | None) -> None:
        """Continue the last moment with `frame` when it hashes close to that moment's last
        frame or is its picture lighter or darker (`_same_picture`: some pictures' hashes are
        not stable, two encodings of a low-contrast one can differ by 18 bits); else start a
        moment. A frame under `_DIM_SHARE` of a neighbour's light may be a fade's, whose hash
        is noisy: it goes with the neighbour it hashes closer to, if under `_DIM_JOIN`."""
        last = self.open[-1] if self.open else None
        after = picturehash.distance(frame.hash, following.hash) if following else 64
        if last is None or self.bound:
            joins = last is not None
        else:
            before = picturehash.distance(frame.hash, last.last_hash)
            joins = before <= JOIN_DISTANCE or _same_picture(frame.last, last.last)
            if not joins and frame.last_light < _DIM_SHARE * last.last_light:
                joins = before < min(after, _DIM_JOIN)
        self.bound = bool(not joins and following and frame.last_light < _DIM_SHARE * following.last_light
                          and after < _DIM_JOIN)
        if joins:
            last.join(frame)
        else:
            self.open.append(frame)
            self._merge_down(self.memory_bytes // max(1, frame.image.width * frame.image.height * 3))

    def finish(self, limit: int, duration: float) -> list[Moment]:
        """The moments, merged down to `limit`, each ending where the next starts."""
        if self.held is not None:
            self._place(self.held, None)
        if not self.open and self.first_blank is not None:
            self.open = [self.first_blank]  # every frame blank: one moment shows the first
        self._merge_down(limit)
        ends = [m.start for m in self.open[1:]] + [duration]
        return [Moment(m.start, max(end, m.start), m.image, m.hash, m.frame)
                for m, end in zip(self.open, ends, strict=True)]

    def _merge_down(self, count: int) -> None:
        """While over `count` moments, merge the adjacent pair whose representatives are closest."""
        while len(self.open) > max(1, count):
            hashes = np.array([m.hash for m in self.open], dtype=np.int64)
            i = int(np.argmin(picturehash.distance(hashes[:-1], hashes[1:])))
            self.open[i].join(self.open.pop(i + 1))


def _same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two thumbnails show one picture, one perhaps dimmed to no less than half (a
    fade's edge): the darker is within `SAME_PIXELS` on average of the lighter scaled to fit
    it. Dimmer, any picture is near any other."""
    dark, light = (a, b) if float((a * a).sum()) < float((b * b).sum()) else (b, a)
    share = float((dark * light).sum()) / max(float((light * light).sum()), 1.0)
    return share >= 0.5 and float(np.abs(dark - share * light).mean()) <= SAME_PIXELS
