"""The video reader (`search.media.video`) on generated videos whose shots are known
(`tests.support.videos`): one moment a shot, none for a black opening, the budget, the
magic bytes, damaged files and single frames."""

from __future__ import annotations

import io
import os
import random
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from search.media import picturehash
from search.media.video import (
    JOIN_DISTANCE,
    PER_MINUTE,
    VIDEO_SUFFIXES,
    VideoError,
    frame_at,
    load_video,
    looks_like_video,
)
from tests.support import videos

EARLY = 0.15  # a moment may start this much before its shot (a frame or so)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[videos.GeneratedVideo]:
    return videos.corpus(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def loaded(corpus: list[videos.GeneratedVideo]) -> dict[Path, object]:
    return {video.path: load_video(video.path) for video in corpus}


def _hash(image: Image.Image) -> int:
    return picturehash.picture_hash(image)


def _contrast(image: Image.Image) -> float:
    """The largest spread of a colour channel (two colours of one grey differ there)."""
    return float(np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3).std(axis=0).max())


def test_the_corpus_covers_the_containers_fades_and_openings(corpus):
    assert {video.container for video in corpus} == {".mp4", ".webm", ".mkv", ".avi"}
    assert any(video.fade for video in corpus) and any(video.black_opening for video in corpus)
    captions = [shot.caption for video in corpus for shot in video.shots]
    assert len(captions) == len(set(captions))  # a caption names one shot of one video
    assert all(3 <= len(video.shots) <= 5 for video in corpus)


def test_every_shot_has_a_moment_of_its_picture_starting_inside_it(corpus, loaded):
    for video in corpus:
        moments = loaded[video.path].moments
        assert len(moments) == len(video.shots), video.path.name  # nothing split, nothing merged
        for shot in video.shots:
            found = [m for m in moments if shot.start - EARLY <= m.start < shot.end
                     and picturehash.distance(m.picture_hash, _hash(shot.picture)) <= JOIN_DISTANCE]
            assert found, (video.path.name, shot)
            assert _contrast(found[0].image) > 0.9 * _contrast(shot.picture)  # not a fade's dim frame


def test_moments_tile_the_video_and_hash_their_images(corpus, loaded):
    for video in corpus:
        got = loaded[video.path]
        assert (got.width, got.height) == videos.SIZE
        assert got.duration == pytest.approx(video.shots[-1].end, abs=0.15)
        assert [m.end for m in got.moments[:-1]] == [m.start for m in got.moments[1:]]
        assert got.moments[-1].end == got.duration
        for moment in got.moments:
            assert moment.image.mode == "RGB" and max(moment.image.size) <= 640
            assert moment.picture_hash == picturehash.picture_hash(moment.image)
            assert moment.start <= moment.frame < moment.end
            again = frame_at(video.path, moment.frame, max_side=640)  # the representative, decoded again
            assert picturehash.distance(_hash(again), moment.picture_hash) <= 4


def test_a_file_object_reads_like_its_path(corpus, loaded):
    for video in corpus[:2]:
        with open(video.path, "rb") as file:
            got = load_video(io.BytesIO(file.read()))
        assert [m.start for m in got.moments] == [m.start for m in loaded[video.path].moments]
        shot = video.shots[-1]
        shown = frame_at(io.BytesIO(video.path.read_bytes()), video.bright(shot))
        assert picturehash.distance(_hash(shown), _hash(shot.picture)) <= JOIN_DISTANCE
    with pytest.raises(VideoError, match="truncated"):
        load_video(io.BytesIO(corpus[0].path.read_bytes()[:5000]))  # an MP4 cut before its index
    with pytest.raises(VideoError):
        load_video(io.BytesIO(b"not a video" * 100))


def test_a_black_opening_makes_no_moment(corpus, loaded, tmp_path):
    opened = [video for video in corpus if video.black_opening]
    assert opened
    for video in opened:
        assert loaded[video.path].moments[0].start >= video.black_opening - EARLY
    first, second = (load_video(path) for path in videos.black_opening_pair(tmp_path))
    assert first.moments[0].start >= 2.0 - EARLY and second.moments[0].start >= 2.0 - EARLY
    assert min(picturehash.distance(a.picture_hash, b.picture_hash)
               for a in first.moments for b in second.moments) > JOIN_DISTANCE  # nothing in common


def test_an_all_black_video_is_one_moment_at_zero(tmp_path):
    path = tmp_path / "black.mp4"
    videos.write_video(path, [(Image.new("RGB", (64, 64)), 3.0)])
    (moment,) = load_video(path).moments
    assert moment.start == 0 and moment.end == pytest.approx(3.0)


def test_the_budget_merges_moments(tmp_path):
    rng = random.Random(3)
    pictures = [(sample.image, 1.0) for sample in videos.distinct_pictures(rng, 20, set())]
    path = tmp_path / "twenty.mp4"
    videos.write_video(path, pictures)
    assert len(load_video(path, per_minute=1000).moments) == 20  # a moment a shot when unbounded
    assert len(load_video(path).moments) == 20 / 60 * PER_MINUTE
    small = load_video(path, per_minute=6)
    assert len(small.moments) == 2  # ceil(20 s / 60 s * 6)
    assert small.moments[0].start == 0 and small.moments[-1].end == pytest.approx(20.0)
    frame_bytes = 320 * 240 * 3
    assert len(load_video(path, per_minute=1000, memory_bytes=3 * frame_bytes).moments) == 3


def test_looks_like_video(corpus, tmp_path):
    for video in corpus:
        assert looks_like_video(video.path.read_bytes()[:32]), video.container
    mov = tmp_path / "clip.mov"
    videos.write_video(mov, [(Image.new("RGB", (64, 64), "red"), 1.0)])
    assert looks_like_video(mov.read_bytes()[:32])
    assert looks_like_video(b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat" + bytes(16))  # old QuickTime
    assert {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"} == VIDEO_SUFFIXES
    for fmt in ("PNG", "JPEG", "GIF", "WEBP"):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buffer, format=fmt)
        assert not looks_like_video(buffer.getvalue()[:32]), fmt
    for brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis"):
        assert not looks_like_video(b"\x00\x00\x00\x1cftyp" + brand + b"\x00\x00\x00\x00mif1miaf" + bytes(4))
    assert not looks_like_video(b"hello, world") and not looks_like_video(b"")


def test_truncated_files_fail_cleanly_or_keep_what_decoded(corpus, loaded, tmp_path):
    for container in (".mp4", ".webm"):
        video = next(v for v in corpus if v.container == container)
        for fraction in (0.1, 0.5, 0.6, 0.9):
            cut = videos.truncated(video.path, tmp_path / f"{fraction}{container}", fraction)
            try:
                got = load_video(cut)
            except VideoError as exc:
                assert container == ".mp4" and "truncated" in str(exc)  # the index is at the end
            else:
                assert 1 <= len(got.moments) <= len(loaded[video.path].moments)
                assert got.duration < loaded[video.path].duration
                if fraction <= 0.5:
                    assert len(got.moments) < len(loaded[video.path].moments)


def test_what_is_not_a_video_raises_video_error(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    still = tmp_path / "still.png"
    Image.new("RGB", (8, 8)).save(still)
    for path in (text, fifo, tmp_path / "missing.mp4", tmp_path, still):
        with pytest.raises(VideoError):
            load_video(path)
    with pytest.raises(VideoError, match="still image"):
        load_video(still)


def test_the_time_limit(corpus):
    with pytest.raises(VideoError, match="decoding took over"):
        load_video(corpus[0].path, time_limit_s=0)


def test_frame_at_shows_the_shot_at_that_time(corpus):
    for video in corpus:
        for shot in video.shots:
            for when in (video.bright(shot), (shot.start + shot.end) / 2, shot.end - 0.05):  # between two
                shown = _hash(frame_at(video.path, when))
                assert picturehash.distance(shown, _hash(shot.picture)) <= JOIN_DISTANCE, (video.path, when)
        width, height = videos.SIZE
        assert frame_at(video.path, 0, max_side=100).size == (100, round(100 * height / width))
        for outside in (-1.0, video.shots[-1].end + 1):
            with pytest.raises(VideoError, match="outside"):
                frame_at(video.path, outside)


def test_taken_at_and_rotation(tmp_path):
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        container.metadata["creation_time"] = "2024-05-01T12:30:00.000000Z"
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(-90)  # shown turned a quarter clockwise, as a phone held upright
        pixels = np.zeros((32, 64, 3), np.uint8)
        pixels[:, :16] = 255  # white on the left: on top once turned
        for _ in range(10):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, "rgb24")))
        container.mux(stream.encode(None))
    got = load_video(path)
    assert got.taken_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC).astimezone().replace(tzinfo=None)
    assert (got.width, got.height) == (32, 64)
    image = got.moments[0].image
    assert image.size == (32, 64)
    top, bottom = np.asarray(image.convert("L"))[:8].mean(), np.asarray(image.convert("L"))[-8:].mean()
    assert top > 200 > 50 > bottom


def test_reencoded_copies_have_the_same_moments(corpus, loaded, tmp_path):
    video = corpus[0]
    copy = videos.reencode(video.path, tmp_path / "copy", size=(160, 120), codec="mpeg4", container=".mkv")
    got = load_video(copy)
    assert (got.width, got.height) == (160, 120)
    original = loaded[video.path].moments
    assert len(got.moments) == len(original)
    for a, b in zip(original, got.moments, strict=True):
        assert picturehash.distance(a.picture_hash, b.picture_hash) <= JOIN_DISTANCE
        assert abs(a.start - b.start) <= 1.5
