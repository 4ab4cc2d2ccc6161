"""The duplicate finder at scale: 100,000 images of synthetic vectors (32 x 256 float16, the
real model's shape) and a picture hash each, with planted near copies and look-alikes,
through `search.query.duplicates.find`, the path `duplicates.groups` takes, fed chunk by chunk
as the catalog feeds it.

The world: 1,000 scenes; each picture's 32 query vectors are its scene's plus noise, so
pictures of one scene mean nearly the same (the neighbour search is not trivial). A planted
copy is its picture's vectors plus a little noise and its hash with a few bits flipped
(what re-encoding and resizing do); a look-alike is another picture of the scene drawn
close to it (its vectors nearer than a copy's would need) with a hash of its own. Each
picture is a smooth random texture (a seeded 12 x 12 grid of colours, enlarged): a copy's is
its original's cropped 2 to 5 % a side and 15 % brighter or darker, a look-alike's its own;
the finder compares the content of its candidate pairs on these, as on thumbnails. Reported:
seconds by stage, peak memory (RSS), recall of the planted copy pairs, look-alikes joined.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageEnhance

from search.query.agreement import Looks
from search.query.duplicates import DEFAULT_THRESHOLD, find, pooled
from search.records import Fingerprints

QUERIES, DIM = 32, 256
SCENES = 1_000
CHUNK = 2_048  # images a chunk, as the catalog yields them


class World:
    """Image i shows picture `picture[i]`; copies share their original's picture."""

    def __init__(self, images: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.seed = seed
        self.copies = images // 20  # 5 %: one planted copy each
        self.lookalikes = images // 20
        originals = images - self.copies - self.lookalikes
        copied = rng.choice(originals, self.copies, replace=False)
        self.picture = np.concatenate([np.arange(originals), copied, originals + np.arange(self.lookalikes)])
        self.imitates = np.concatenate([np.full(originals + self.copies, -1),
                                        rng.choice(originals, self.lookalikes, replace=False)])
        self.scene = rng.integers(0, SCENES, originals)
        self.centres = rng.standard_normal((SCENES, QUERIES, DIM)).astype(np.float32)
        hashes = rng.integers(-(2**63), 2**63 - 1, size=originals + self.lookalikes, dtype=np.int64)
        flips = rng.integers(0, 64, size=(images, 3))  # a copy's hash: up to 3 bits flipped
        self.hashes = hashes[self.picture]
        copied = np.arange(originals, originals + self.copies)
        for column in range(flips.shape[1]):
            self.hashes[copied] ^= np.left_shift(np.int64(1), flips[copied, column])

    def __len__(self) -> int:
        return len(self.picture)

    def vectors(self, image: int) -> np.ndarray:
        """(Q, D) float16, L2-normalised per query vector."""
        picture, imitated = int(self.picture[image]), int(self.imitates[image])
        base = imitated if imitated >= 0 else picture
        vectors = self.centres[self.scene[base]] + 0.8 * self._noise(0, base)
        if imitated >= 0:  # another picture of the scene, close in meaning
            vectors += 0.3 * self._noise(1, image)
        elif image != picture:  # a near copy
            vectors += 0.1 * self._noise(2, image)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)

    def _noise(self, kind: int, image: int) -> np.ndarray:
        rng = np.random.default_rng((self.seed, kind, image))
        return rng.standard_normal((QUERIES, DIM), dtype=np.float32)

    def look(self, row: int) -> Image.Image:
        """Image `row`'s picture, as the finder would read its thumbnail."""
        picture = int(self.picture[row])
        rng = np.random.default_rng((self.seed, 3, picture))
        image = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).resize(
            (256, 256), Image.Resampling.BICUBIC)
        if row != picture and self.imitates[row] < 0:  # a near copy
            edit = np.random.default_rng((self.seed, 4, row))
            cut = edit.uniform(0.02, 0.05, 4) * 256
            image = image.crop((cut[0], cut[1], 256 - cut[2], 256 - cut[3])).resize((200, 200))
            image = ImageEnhance.Brightness(image).enhance(float(edit.choice([0.85, 1.15])))
        return image

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, (n, Q, D) float16), CHUNK images at a time, ids from 1."""
        for start in range(0, len(self), CHUNK):
            rows = range(start, min(start + CHUNK, len(self)))
            yield np.arange(rows.start, rows.stop) + 1, np.stack([self.vectors(i) for i in rows])

    def fingerprints(self) -> Fingerprints:
        n = len(self)
        return Fingerprints(ids=np.arange(1, n + 1), paths=[f"/photos/{i:06d}.jpg" for i in range(n)],
                            content_hashes=[f"{i:040x}" for i in range(n)], picture_hashes=self.hashes,
                            hashed=np.ones(n, dtype=bool), pixels=np.full(n, 1_000_000), dates=np.zeros(n))


def run(images: int = 100_000, *, seed: int = 0, log: Callable[[str], None] = lambda line: None) -> dict:
    before = _rss_mb()  # the process as it starts: the interpreter, numpy, FAISS (and torch, under run.py)
    world = World(images, seed)
    prints = world.fingerprints()
    making = Timed(world.chunks())
    started = time.perf_counter()
    looks = Looks(world.look)
    found = find(prints, making, looks, DEFAULT_THRESHOLD)
    seconds = time.perf_counter() - started
    generating = making.seconds
    group_of = {image.id - 1: g for g, group in enumerate(found.groups) for image in group.images}
    originals = len(world) - world.copies - world.lookalikes
    copies = np.arange(originals, originals + world.copies)
    found_pairs = sum(group_of.get(int(c), -1) == group_of.get(int(world.picture[c]), -2) for c in copies)
    lookalikes = np.arange(originals + world.copies, len(world))
    joined = sum(group_of.get(int(i), -1) == group_of.get(int(world.imitates[i]), -2) for i in lookalikes)
    grouped = sum(len(group.images) for group in found.groups)
    sample = lookalikes[:200]
    meaning = [float(_pooled_one(world, int(i)) @ _pooled_one(world, int(world.imitates[i]))) for i in sample]
    result = {
        "images": len(world), "planted_copies": world.copies, "planted_lookalikes": world.lookalikes,
        "threshold": DEFAULT_THRESHOLD, "groups": len(found.groups), "images_grouped": grouped,
        "planted_pair_recall": round(found_pairs / world.copies, 4), "lookalikes_joined": int(joined),
        "extra_images_grouped": int(grouped - 2 * found_pairs),
        "lookalike_pooled_cosine_median": round(float(np.median(meaning)), 3),
        "seconds_total": round(seconds, 1), "seconds_making_vectors": round(generating, 1),
        "seconds_finding": round(seconds - generating, 1), "pictures_compared": looks.loaded,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_mb_before": before,
    }
    log(f"duplicates: {len(world):,} images in {result['seconds_finding']} s (+ "
        f"{result['seconds_making_vectors']} s making vectors), peak RSS {result['peak_rss_mb']} MB, "
        f"planted pair recall {result['planted_pair_recall']}")
    return result


def _rss_mb() -> int:
    with open("/proc/self/statm") as statm:
        return round(int(statm.read().split()[1]) * resource.getpagesize() / 2**20)


def _pooled_one(world: World, image: int) -> np.ndarray:
    return pooled(world.vectors(image)[None])[0]


class Timed:
    """The chunks, with the seconds spent making them (inside `next`): the finder's own time
    is the total less these, since reading them from a catalog would cost something else."""

    def __init__(self, chunks: Iterator[tuple[np.ndarray, np.ndarray]]) -> None:
        self._chunks = chunks
        self.seconds = 0.0

    def __iter__(self) -> Timed:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        started = time.perf_counter()
        try:
            return next(self._chunks)
        finally:
            self.seconds += time.perf_counter() - started
