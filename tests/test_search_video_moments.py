"""Search finds the moment: generated videos of the demo world with known shots, indexed by
the real pipeline with the shipped demo model, searched by each shot's caption."""

from __future__ import annotations

import pytest

from search.errors import InputError
from search.models import Blip2Engine
from search.query.duplicates import groups
from search.query.options import SearchOptions
from search.query.searcher import Searcher
from tests.support.corpus import write_corpus
from tests.support.engines import FLOAT32
from tests.support.videos import black_opening_pair, corpus, reencode

SHOTS_FOUND = 0.9  # the bar; what is observed (every shot of 33) is asserted below


@pytest.fixture(scope="module")
def demo_engine():
    return Blip2Engine.load("demo", device="cpu", precision=FLOAT32)


@pytest.fixture(scope="module")
def library(tmp_path_factory, demo_engine):
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection

    root = tmp_path_factory.mktemp("library")
    clips = corpus(root / "videos", seed=7, count=8)
    write_corpus(root / "images", 6)
    collection = Collection.open(root / "index", create=True)
    index_paths(collection, demo_engine, [root], IndexOptions(workers=0, ocr=False))
    yield root, clips, collection, Searcher(collection, demo_engine)
    collection.close()


def test_a_shots_caption_finds_its_video_at_that_shot(library):
    root, clips, collection, searcher = library
    found, total, misses = 0, 0, []
    for clip in clips:
        video = collection.catalog.at_path(str(clip.path))
        for shot in clip.shots:
            total += 1
            hits = searcher.search(shot.caption, SearchOptions(k=5))
            top = hits[0]
            if top.id == video.id and shot.start - 0.15 <= top.time_s < shot.end:
                found += 1
            else:
                misses.append((clip.path.name, shot.caption, top.path, top.time_s))
    share = found / total
    assert share >= SHOTS_FOUND, misses
    assert found >= total - 1, misses  # observed: all 33; one rank may flip on another CPU


def test_a_video_hit_carries_its_moment(library):
    root, clips, collection, searcher = library
    clip = clips[0]
    hits = searcher.search(clip.shots[1].caption, SearchOptions(k=20))
    videos = [hit for hit in hits if hit.media == "video"]
    assert len({hit.id for hit in videos}) == len(videos)  # one video, one hit
    top = videos[0]
    assert top.moment is not None and top.duration_s == pytest.approx(clip.shots[-1].end, abs=0.2)
    assert top.time_s in [m.time_s for m in top.moments]
    assert top.moments == sorted(top.moments, key=lambda m: m.time_s)
    moment = collection.catalog.get(top.moment)
    assert moment.parent == top.id and moment.start_s == top.time_s and moment.caption == top.caption


def test_media_filters(library):
    root, clips, collection, searcher = library
    caption = clips[0].shots[0].caption
    images = searcher.search(f"{caption} media:image", SearchOptions(k=50))
    assert images and all(hit.media == "image" for hit in images)
    videos = searcher.search(f"{caption} media:video", SearchOptions(k=50))
    assert videos and all(hit.media == "video" for hit in videos)
    listed = searcher.search("media:video", SearchOptions(k=50))
    assert sorted(hit.id for hit in listed) == sorted(
        collection.catalog.at_path(str(clip.path)).id for clip in clips)
    with pytest.raises(InputError, match="media: takes image or video"):
        searcher.search("a circle media:sound")
    assert searcher.search(f"{caption} path:videos", SearchOptions(k=5))[0].media == "video"


def test_date_order_over_the_cutoff_keeps_one_hit_a_video(library):
    root, clips, collection, searcher = library
    hits = searcher.search(clips[2].shots[0].caption, SearchOptions(k=30, sort="newest", min_match=0.5))
    assert hits and len({hit.id for hit in hits}) == len(hits)
    assert all(hit.match >= 0.5 for hit in hits)
    assert collection.catalog.at_path(str(clips[2].path)).id in {hit.id for hit in hits}


def test_similar_ask_and_explain_take_a_moment(library):
    root, clips, collection, searcher = library
    clip = clips[1]
    video = collection.catalog.at_path(str(clip.path))
    shot = clip.shots[-1]
    at = (shot.start + shot.end) / 2
    similar = searcher.similar.find(image_id=video.id, at=at, k=5)
    assert similar and video.id not in {hit.id for hit in similar}
    answer = searcher.questions.ask(video.id, "what color is the background?", at=at)
    assert shot.caption.endswith(f" {answer} background")  # the frame shown then
    explained = searcher.questions.explain(video.id, shot.caption, at=at)
    assert explained.id == video.id and shot.start - 0.15 <= explained.time_s < shot.end
    with pytest.raises(InputError, match="outside it"):
        searcher.questions.ask(video.id, "what shape is it?", at=clip.shots[-1].end + 60)
    image = collection.catalog.at_path(str(root / "images" / "img0000.png"))
    with pytest.raises(InputError, match="not a video"):
        searcher.similar.find(image_id=image.id, at=1.0)


def test_duplicate_videos_by_their_moments(tmp_path, demo_engine):
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection

    clips = corpus(tmp_path / "videos", seed=5, count=2)
    reencode(clips[0].path, tmp_path / "videos" / "again.mkv", size=(240, 180), codec="mpeg4",
             container=".mkv")
    first, second = black_opening_pair(tmp_path / "videos")
    collection = Collection.open(tmp_path / "index", create=True)
    index_paths(collection, demo_engine, [tmp_path / "videos"], IndexOptions(workers=0, ocr=False))
    found = groups(collection)
    members = [{image.path for image in group.images} for group in found.groups]
    assert {str(clips[0].path), str(tmp_path / "videos" / "again.mkv")} in members
    assert not any(str(first) in group and str(second) in group for group in members)
    assert not any(str(clips[1].path) in group for group in members)
    collection.close()
