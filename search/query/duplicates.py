"""Duplicates: groups of indexed images that show the same picture (videos: the same moments,
`video_duplicates`). Nothing is deleted or moved.

Two images are the same picture when
- their files hold the same bytes (the same content hash): reason "identical", or
- one is a near copy of the other (resized, re-encoded, lightly cropped, brighter or
  darker, saved in another format): reason "near", when their `similarity` reaches the
  threshold. Three signals, because meaning and layout alone join different pictures:
  - meaning: the cosine of the two images' pooled BLIP-2 vectors (the mean of their Q
    query vectors, L2-normalised), rescaled so that MEANING_FLOOR is 0 and 1 is 1;
    two different photos of the same kind of scene score high here;
  - layout: 1 - distance / 32 between their 64-bit perceptual hashes (`picturehash`), 1
    for the same layout, about 0 for unrelated pictures; the same shapes drawn elsewhere
    score low here, an inverted picture or another invoice of one template high;
  - content (`agreement`): their thumbnails' pixels, aligned, and the words OCR read in
    them; an inverted or mirrored picture, another document or screen of the same layout
    score low here;
  A pair's content is compared when it is a candidate: close in meaning or layout (one of
  them reaching CANDIDATE), or in the words OCR read (`agreement.text_pairs`); `similarity`
  is the content's, in 0..1. DEFAULT_THRESHOLD was calibrated on generated duplicates
  (docs/duplicates.md). An image indexed before picture hashes were computed has none: it
  can only be "identical" until the next `index` run fills it.

Candidates never come from all pairs: each picture's NEIGHBOURS nearest by pooled vector
and by picture hash (`vectors.neighbours`), and pictures whose OCR words nearly match.
Confirmed pairs join pictures into groups, strongest first, and two groups merge only when
every member of the merged group reaches the threshold against its kept image, so a chain
of look-alikes cannot grow one group. The kept image: the most pixels, then the oldest
(EXIF date, else modified), then the lowest id. Groups are listed strongest first (by their
weakest member), each member with why.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePath

import numpy as np

from ..collection import Collection
from ..errors import InputError
from ..media.picturehash import distance
from ..records import Fingerprints
from ..schemas import DuplicateGroup, DuplicateImage, Duplicates, KeptImage
from .agreement import Content, Looks, compare, text_pairs, thumbnail
from .video_duplicates import video_groups

DEFAULT_THRESHOLD = 0.5  # calibrated on generated duplicates: docs/duplicates.md
MEANING_FLOOR = 0.8  # pooled cosines at or below this mean different things
LAYOUT_BITS = 32  # the farthest two hashes are (`picturehash.distance`)
NEIGHBOURS = 16  # candidates per picture, by meaning and by layout each
CANDIDATE = 0.35  # the meaning or layout a pair needs before its content is compared
CHUNK = 65_536  # candidate pairs whose cosines are taken at once (two (CHUNK, D) gathers)


def check_threshold(threshold: float | None) -> float:
    """The threshold to use: `threshold`, or DEFAULT_THRESHOLD; one outside (0, 1] is an
    InputError (at 0 every candidate pair would be a "near copy" at similarity 0.000)."""
    if threshold is None:
        return DEFAULT_THRESHOLD
    if not 0 < threshold <= 1:  # NaN fails too
        raise InputError(f"the threshold must be a number above 0 and at most 1, not {threshold}")
    return float(threshold)


def pooled(vectors: np.ndarray) -> np.ndarray:
    """(n, Q, D) query vectors -> (n, D) float32: their mean, L2-normalised."""
    mean = np.asarray(vectors).mean(axis=1, dtype=np.float32)  # no float32 copy of a float16 chunk
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def similarity(cosines: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """max(meaning, layout) of pairs, from their pooled cosines and hash distances: how far the
    first signals make two pictures candidates (content decides, `Judge`)."""
    meaning = np.clip((np.asarray(cosines, dtype=np.float64) - MEANING_FLOOR) / (1 - MEANING_FLOOR), 0, 1)
    layout = np.clip(1 - np.asarray(distances, dtype=np.float64) / LAYOUT_BITS, 0, 1)
    return np.maximum(meaning, layout)


def groups(collection: Collection, threshold: float | None = None) -> Duplicates:
    """The duplicate groups of a collection, kept until its catalog changes (a server asked
    again, or for another page, answers from memory)."""
    threshold = check_threshold(threshold)
    return collection.memo(("duplicates", threshold), lambda: _groups(collection, threshold))


def _groups(collection: Collection, threshold: float) -> Duplicates:
    prints = collection.catalog.listing.fingerprints()
    records = collection.catalog.get_many

    def load(row: int):
        record = records([int(prints.ids[row])]).get(int(prints.ids[row]))
        return thumbnail(collection.thumbnail(record)) if record is not None else None

    found = find(prints, collection.iter_vectors(), Looks(load), threshold)
    groups = found.groups + video_groups(collection, threshold)
    return Duplicates(groups=sorted(groups, key=lambda group: (-min(i.similarity for i in group.images),
                                                               group.keep.id)))


def find(prints: Fingerprints, vectors: Iterable[tuple[np.ndarray, np.ndarray]],
         looks: Looks, threshold: float | None = None) -> Duplicates:
    """Every group of readable images that show the same picture, from their fingerprints, their
    stored vectors, (ids, (n, Q, D)) a chunk at a time, and their thumbnails (`looks`)."""
    threshold = check_threshold(threshold)
    pooled_vectors, has_vectors = _pooled_of(vectors, prints.ids)
    return build(prints, pooled_vectors, has_vectors, threshold, looks)


def build(prints: Fingerprints, vectors: np.ndarray, has_vectors: np.ndarray, threshold: float,
          looks: Looks) -> Duplicates:
    """The groups, from fingerprints, each image's (n, D) pooled vector (rows by `prints`;
    `has_vectors` says which rows have one) and their thumbnails (`looks`, by row)."""
    first = _first_of_content(prints.content_hashes)  # (n,): the row of the first file with its bytes
    pictures = np.flatnonzero((first == np.arange(len(first))) & prints.hashed & has_vectors)
    files: dict[int, list[int]] = {}
    for row, head in enumerate(first):
        files.setdefault(int(head), []).append(row)
    rank = _keep_rank(prints, files)
    judge = Judge(prints, vectors, looks)
    pairs, _ = near_pairs(vectors[pictures], prints.picture_hashes[pictures], CANDIDATE)
    texts = text_pairs(prints.texts or [None] * len(prints.ids), pictures, NEIGHBOURS)
    pairs = np.unique(np.concatenate([pictures[pairs], texts]), axis=0)
    scores = np.array([judge.content(int(a), int(b)).score for a, b in pairs])
    sure = scores >= threshold
    joined = _join(pairs[sure], scores[sure], rank, judge.similarities, threshold)
    grouped = {row for group in joined for row, _ in group}
    joined += [[(head, 1.0)] for head, rows in files.items() if len(rows) > 1 and head not in grouped]
    groups = [_group(prints, files, judge, members) for members in joined]
    return Duplicates(groups=sorted(groups, key=lambda group: (-min(i.similarity for i in group.images),
                                                               group.keep.id)))


class Judge:
    """The similarity of two pictures (rows of `prints`): their content's, once their meaning
    or layout reaches CANDIDATE, each pair compared once; and why a near copy is one."""

    def __init__(self, prints: Fingerprints, vectors: np.ndarray, looks: Looks) -> None:
        self.prints, self.vectors, self.looks = prints, vectors, looks
        self._texts = prints.texts or [None] * len(prints.ids)
        self._contents: dict[tuple[int, int], Content] = {}

    def content(self, a: int, b: int) -> Content:
        """Kept only when the content agrees at all: most candidates do not (one comparison of
        their grids), and keeping those would cost memory, not time."""
        a, b = min(a, b), max(a, b)
        if (a, b) in self._contents:
            return self._contents[a, b]
        found = compare(self.looks(a), self.looks(b), self._texts[a], self._texts[b])
        if found.score > 0:
            self._contents[a, b] = found
        return found

    def similarities(self, keep: int, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) similarities of `rows` to the kept picture `keep`."""
        return np.array([self.content(keep, int(row)).score for row in rows])

    def why(self, keep: int, row: int) -> str:
        """What makes `row` a near copy of `keep`: how it differs, then each signal."""
        vectors, hashes = self.vectors, self.prints.picture_hashes
        meaning = float(similarity(vectors[row] @ vectors[keep], LAYOUT_BITS))
        layout = float(similarity(MEANING_FLOOR, distance(hashes[row], hashes[keep])))
        content = self.content(keep, row)
        text = f", text {content.text:.2f}" if content.text is not None else ""
        signals = f"pixels {content.pixels:.2f}{text}, meaning {meaning:.2f}, layout {layout:.2f}"
        return f"{'; '.join(self._edits(keep, row, content))}; {signals}"

    def _edits(self, keep: int, row: int, content: Content) -> list[str]:
        prints, edits = self.prints, []
        share = prints.pixels[row] / max(int(prints.pixels[keep]), 1)
        if share < 0.98:
            edits.append(f"{share:.0%} of the pixels")
        if max(content.crop) > 0.01:
            edits.append("cropped")
        light = content.light if keep < row else 1 / max(content.light, 1e-6)  # compared in row order
        if abs(light - 1) > 0.05:
            edits.append("brighter" if light > 1 else "darker")
        kind = PurePath(prints.paths[row]).suffix.lower()
        if kind != PurePath(prints.paths[keep]).suffix.lower():
            edits.append(f"saved as {kind.lstrip('.').upper() or 'a file without extension'}")
        return edits or ["re-encoded"]

def near_pairs(vectors: np.ndarray, hashes: np.ndarray, threshold: float,
               k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """((m, 2) rows (a < b) of the pictures whose `similarity` reaches `threshold`, among each
    one's `k` nearest by (n, D) pooled `vectors` and its `k` nearest by layout, and their (m,)
    similarities); `hashes`: the pictures' (n,) hashes."""
    from ..store.vectors.neighbours import nearest, nearest_layouts

    if len(vectors) < 2:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    found = np.concatenate([nearest(vectors, k)[0], nearest_layouts(hashes, k)], axis=1)
    rows = np.repeat(np.arange(len(found)), found.shape[1])
    others = found.ravel()
    rows, others = rows[others >= 0], others[others >= 0]
    pairs = np.unique(np.sort(np.stack([rows, others], axis=1), axis=1), axis=0)
    cosines = np.concatenate([np.einsum("ij,ij->i", vectors[part[:, 0]], vectors[part[:, 1]])
                              for part in np.array_split(pairs, max(1, len(pairs) // CHUNK))])
    scores = similarity(cosines, distance(hashes[pairs[:, 0]], hashes[pairs[:, 1]]))
    return pairs[scores >= threshold], scores[scores >= threshold]


def _join(pairs: np.ndarray, scores: np.ndarray, rank: dict[int, tuple], similar, threshold: float
          ) -> list[list[tuple[int, float]]]:
    """Groups of pictures from confirmed pairs, strongest first: two groups merge only when
    every member of the merged one reaches `threshold` against its kept picture (the best
    ranked), `similar(keep, rows)`. A look-alike joined to one copy by chance cannot pull
    its own group in, nor can a chain of look-alikes grow. Each group: (row, similarity to
    the kept one), kept first."""
    group_of: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for at in np.argsort(-scores, kind="stable"):
        a, b = (int(row) for row in pairs[at])
        ga, gb = group_of.get(a, a), group_of.get(b, b)
        if ga == gb:
            continue
        merged = members.get(ga, [a]) + members.get(gb, [b])
        keep = min(merged, key=rank.__getitem__)
        if (similar(keep, np.array([row for row in merged if row != keep])) >= threshold).all():
            members.pop(gb, None)
            members[ga] = merged
            group_of.update(dict.fromkeys(merged, ga))
    groups = []
    for rows in members.values():
        keep = min(rows, key=rank.__getitem__)
        others = np.array([row for row in rows if row != keep])
        groups.append([(keep, 1.0), *zip(others.tolist(), similar(keep, others).tolist(), strict=True)])
    return groups


def _group(prints: Fingerprints, files: dict[int, list[int]], judge: Judge,
           members: list[tuple[int, float]]) -> DuplicateGroup:
    """A group's JSON: every file of each member picture, the kept one first, then by
    similarity to it and id."""
    head = members[0][0]
    keep = min(files[head], key=lambda row: _file_rank(prints, row))
    every = [row for picture, _ in members for row in files[picture]]
    images = [(keep, 1.0, "identical", _kept_because(prints, keep, every))]
    images += [(row, 1.0, "identical", "the same bytes") for row in files[head] if row != keep]
    near = [(row, score, "near", judge.why(head, picture))
            for picture, score in members[1:] for row in files[picture]]
    images += sorted(near, key=lambda item: (-item[1], int(prints.ids[item[0]])))
    return DuplicateGroup(
        keep=KeptImage(id=int(prints.ids[keep]), path=prints.paths[keep]),
        images=[DuplicateImage(id=int(prints.ids[row]), path=prints.paths[row], similarity=round(score, 4),
                               reason=reason, why=why) for row, score, reason, why in images])


def _kept_because(prints: Fingerprints, keep: int, rows: list[int]) -> str:
    """Why `keep` is the one to keep among `rows`."""
    others = [row for row in rows if row != keep]
    if all(prints.pixels[row] < prints.pixels[keep] for row in others):
        return "kept: the most pixels"
    if all(prints.pixels[row] < prints.pixels[keep] or prints.dates[row] > prints.dates[keep]
           for row in others):
        return "kept: the oldest of the largest"
    return "kept: the first indexed of the largest and oldest"


def _keep_rank(prints: Fingerprints, files: dict[int, list[int]]) -> dict[int, tuple]:
    """Each picture's sort key as a keep suggestion (smaller first): its best file's."""
    return {head: min(_file_rank(prints, row) for row in rows) for head, rows in files.items()}


def _file_rank(prints: Fingerprints, row: int) -> tuple:
    return -int(prints.pixels[row]), float(prints.dates[row]), int(prints.ids[row])


def _first_of_content(hashes: list[str]) -> np.ndarray:
    first: dict[str, int] = {}
    return np.array([first.setdefault(value, row) for row, value in enumerate(hashes)], dtype=np.int64)


def _pooled_of(chunks: Iterable[tuple[np.ndarray, np.ndarray]], ids: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """((n, D) pooled vectors of the images `ids` (ascending), which of them have vectors)."""
    vectors = np.zeros((len(ids), 0), dtype=np.float32)
    present = np.zeros(len(ids), dtype=bool)
    for chunk_ids, chunk in chunks:
        if not len(ids):  # no images (videos only): nothing to pool
            break
        if not vectors.shape[1]:  # the width is known with the first chunk
            vectors = np.zeros((len(ids), chunk.shape[2]), dtype=np.float32)
        at = np.searchsorted(ids, chunk_ids)
        inside = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == chunk_ids)
        vectors[at[inside]] = pooled(chunk[inside])
        present[at[inside]] = True
    return vectors, present
