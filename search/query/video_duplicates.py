"""Duplicate videos: compared by their moments, not by one frame.

Two videos are the same when their files hold the same bytes ("identical"), or when most of
the time of each is shown by moments the other has too ("near"): a moment of one *is shown*
by the other when some moment of the other has a picture hash within SAME_BITS of its own
(`picturehash.distance`: re-encoding, resizing and a change of brightness leave the layout).
The share of a video's time so covered is taken both ways and the smaller kept; similarity
rescales it so that half the time shown is 0 and all of it 1 (the duplicate threshold, 0.5
by default, then asks for three quarters). Blank frames are never moments (`media.video`),
so two different videos that open on the same black, or fade through it, share nothing.
Only videos whose durations are within DURATION_SLACK of each other are compared.
"""

from __future__ import annotations

import numpy as np

from ..collection import Collection
from ..media.picturehash import distance
from ..records import ImageRecord
from ..schemas import DuplicateGroup, DuplicateImage, KeptImage

SAME_BITS = 10  # picture hashes this close show the same frame
DURATION_SLACK = 0.1  # durations within this share of the longer are compared
Spans = list[tuple[float, float, int]]  # (start, end, picture hash) of each moment


def video_groups(collection: Collection, threshold: float) -> list[DuplicateGroup]:
    """Groups of videos that are the same, the kept one (the most pixels, then the oldest,
    then the lowest id) first."""
    spans = collection.catalog.moments.fingerprints()
    records = collection.catalog.get_many(spans)
    videos = sorted((r for r in records.values() if r.status == "ok"), key=lambda r: r.end_s or 0.0)
    joined: dict[int, list[ImageRecord]] = {}
    member: set[int] = set()
    for i, a in enumerate(videos):
        if a.id in member:
            continue
        for b in videos[i + 1:]:
            if (b.end_s or 0.0) > (a.end_s or 0.0) * (1 + DURATION_SLACK) + 0.5:
                break
            if b.id in member:
                continue
            if _same(a, b, spans)[0] >= threshold:
                joined.setdefault(a.id, [a]).append(b)
                member.add(b.id)
    return [_group(members, spans) for members in joined.values()]


def similarity(a: Spans, b: Spans) -> float:
    """0 to 1: how much of each video the other shows (the smaller share), rescaled."""
    shared = min(_shown(a, b), _shown(b, a))
    return float(np.clip((shared - 0.5) / 0.5, 0.0, 1.0))


def _same(a: ImageRecord, b: ImageRecord, spans: dict[int, Spans]) -> tuple[float, str]:
    if a.content_hash == b.content_hash:
        return 1.0, "identical"
    return similarity(spans[a.id], spans[b.id]), "near"


def _shown(a: Spans, b: Spans) -> float:
    """The share of `a`'s time shown by a moment of `b`."""
    lengths = np.array([max(end - start, 1e-3) for start, end, _ in a])
    ours = np.array([picture for _, _, picture in a], dtype=np.int64)
    theirs = np.array([picture for _, _, picture in b], dtype=np.int64)
    close = distance(ours[:, None], theirs[None, :]).min(axis=1) <= SAME_BITS
    return float(lengths[close].sum() / lengths.sum())


def _group(members: list[ImageRecord], spans: dict[int, Spans]) -> DuplicateGroup:
    keep = min(members, key=_keep_rank)
    others = [(record, *_same(keep, record, spans)) for record in members if record.id != keep.id]
    ordered = [(keep, 1.0, "identical", "kept: the most pixels, then the oldest")]
    because = {"identical": "the same bytes", "near": "the same moments, re-encoded"}
    ordered += sorted(((r, score, why, because[why]) for r, score, why in others),
                      key=lambda item: (-item[1], item[0].id))
    return DuplicateGroup(keep=KeptImage(id=keep.id, path=keep.path),
                          images=[DuplicateImage(id=r.id, path=r.path, similarity=round(score, 4), reason=why,
                                                 why=text) for r, score, why, text in ordered])


def _keep_rank(record: ImageRecord) -> tuple:
    when = record.taken_at.timestamp() if record.taken_at else record.mtime
    return -(record.width or 0) * (record.height or 0), when, record.id
