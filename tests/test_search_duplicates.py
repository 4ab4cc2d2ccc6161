"""The duplicate finder on a generated set (tests/support/duplicate_images.py, the test seed; the default
threshold was calibrated on another seed), indexed by the real pipeline with the demo model:
real FAISS, real SQLite."""

from __future__ import annotations

import random
import re
from datetime import datetime

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from demo.shapes import render
from search.collection import Collection
from search.errors import InputError
from search.media.picturehash import distance, hamming, picture_hash
from search.query.agreement import Looks
from search.query.duplicates import DEFAULT_THRESHOLD, _join, build, groups, near_pairs, pooled, similarity
from search.records import Fingerprints
from tests.support.duplicate_images import score


@pytest.fixture(scope="module")
def found(duplicate_index):
    collection = Collection.open(duplicate_index["settings"].index)
    try:
        yield groups(collection), collection.catalog.get_many(
            image.id for group in groups(collection).groups for image in group.images)
    finally:
        collection.close()


def _paths(duplicates) -> list[list[str]]:
    return [[image.path for image in group.images] for group in duplicates.groups]


def test_pairs_are_found_with_precision_and_recall(found, duplicate_index):
    duplicates, _ = found
    got = score(duplicate_index["set"], _paths(duplicates))
    print(f"duplicates on the tests' set: {got}")
    # observed: 175 pairs grouped, all right (precision 1.000), of the set's 177 (recall 0.989;
    # the targets 0.98 and 0.90), give or take two found
    assert got.true == 177 and got.right >= 175 - 2 and got.grouped == got.right, str(got)


def test_no_lookalike_inverted_mirrored_or_other_document_is_joined(found, duplicate_index):
    """Look-alikes, inverted and mirrored pictures stay apart from their originals, and no group
    holds two invoices or two chat screens of different content (each shares its layout with
    the others of its kind)."""
    duplicates, _ = found
    made = duplicate_index["set"]
    assert score(made, _paths(duplicates)).lookalikes_joined == 0
    edits = {path.rsplit("_", 1)[1].split(".")[0] for path in made.lookalike}
    assert edits == {"lookalike", "inverted", "mirrored"}
    joined = {path: i for i, paths in enumerate(_paths(duplicates)) for path in paths}
    assert all(joined.get(copy, -1) != joined.get(original, -2) for copy, original in made.lookalike.items())
    for paths in _paths(duplicates):
        assert len({made.picture[path] for path in paths}) == 1, paths
    documents = {made.picture[path] for path in joined if "invoice" in path or "chat" in path}
    assert len(documents) >= 6  # documents and screens are found, each with its own copies


def test_groups_come_strongest_first_with_a_reason_for_each_member(found):
    duplicates, _ = found
    weakest = [min(image.similarity for image in group.images) for group in duplicates.groups]
    assert weakest == sorted(weakest, reverse=True) and weakest[0] > weakest[-1]
    for group in duplicates.groups:
        assert group.images[0].why.startswith("kept: the ")
        for image in group.images[1:]:
            if image.reason == "identical":
                assert image.why == "the same bytes"
            else:  # how it differs, then each signal: pixels, text where there is some, meaning, layout
                pixels = float(re.search(r"pixels (\d\.\d\d)", image.why).group(1))
                assert abs(pixels - image.similarity) <= 0.006 or "text" in image.why, image.why
                assert "meaning" in image.why and "layout" in image.why
    invoice = next(image for group in duplicates.groups for image in group.images[1:]
                   if "invoice" in image.path)
    assert "text 1.00" in invoice.why or "text 0.9" in invoice.why


def test_identical_files_are_grouped_as_identical(found, duplicate_index):
    duplicates, _ = found
    for source, twin in duplicate_index["set"].identical:
        group = next(g for g in duplicates.groups if twin in {image.path for image in g.images})
        reasons = {image.path: (image.reason, image.similarity) for image in group.images}
        assert reasons[source] == reasons[twin] == ("identical", 1.0)


def test_the_kept_image_has_the_most_pixels_then_is_the_oldest(found, duplicate_index):
    duplicates, records = found

    def rank(image_id: int) -> tuple:
        record = records[image_id]
        when = record.taken_at or datetime.fromtimestamp(record.mtime)
        return -(record.width * record.height), when, image_id

    for group in duplicates.groups:
        ids = [image.id for image in group.images]
        assert group.keep.id == ids[0] == min(ids, key=rank)
        assert (group.images[0].reason, group.images[0].similarity) == ("identical", 1.0)
        for image in group.images[1:]:  # each member reaches the threshold against the kept image
            assert image.similarity >= DEFAULT_THRESHOLD
            assert (image.reason == "identical") == (image.similarity == 1.0)
    source, twin = duplicate_index["oldest_twin"]  # same pixels as its source, and older
    assert twin in {group.keep.path for group in duplicates.groups}


def test_threshold_out_of_range_is_refused(duplicate_index):
    collection = Collection.open(duplicate_index["settings"].index)
    try:
        for bad in (2, -1, 0, float("nan")):  # at 0 every candidate pair would be "near", at 0.000
            with pytest.raises(InputError, match="above 0 and at most 1"):
                groups(collection, bad)
        strict = groups(collection, 1.0)  # near copies must then match the kept image exactly
        assert strict.groups  # the byte copies are groups at any threshold
        assert all(image.similarity == 1.0 for group in strict.groups for image in group.images)
    finally:
        collection.close()


def test_picture_hash_survives_copies_and_sees_layout():
    sample = render(random.Random(3), side=160, count=1, soft=True)
    original = picture_hash(sample.image)
    smaller = sample.image.resize((100, 100), Image.Resampling.LANCZOS)
    darker = ImageEnhance.Brightness(sample.image).enhance(0.85)
    assert distance(original, picture_hash(smaller)) <= 6 and distance(original, picture_hash(darker)) <= 6
    turned = sample.image.transpose(Image.Transpose.ROTATE_180)  # the same shape, elsewhere
    assert distance(original, picture_hash(turned)) >= 12
    assert hamming(original, ~original) == 64 and distance(original, ~original) == 0


def test_near_pairs_match_brute_force_on_seeded_vectors():
    """Planted copies (a vector plus noise, a hash with a few bits flipped) among random ones:
    the neighbour searches (by meaning, by layout) find every pair the all-pairs reference
    confirms."""
    rng = np.random.default_rng(1338)
    n, copies = 600, 60
    vectors = rng.standard_normal((n, 8, 32)).astype(np.float32)
    hashes = rng.integers(-(2**63), 2**63 - 1, size=n, dtype=np.int64)
    for i in range(copies):
        vectors[n - 1 - i] = vectors[i] + 0.05 * rng.standard_normal((8, 32))
        hashes[n - 1 - i] = hashes[i] ^ (1 << int(rng.integers(0, 63)))
    flat = pooled(vectors)
    pairs, scores = near_pairs(flat, hashes, 0.5)
    got = {tuple(pair) for pair in pairs.tolist()}
    every = similarity(flat @ flat.T, distance(hashes[:, None], hashes[None, :]))
    want = {(a, b) for a, b in zip(*np.nonzero(np.triu(every >= 0.5, 1)), strict=True)}
    planted = {(i, n - 1 - i) for i in range(copies)}
    assert got == want and planted <= want  # and a few random hashes 16 bits or fewer apart
    assert np.allclose(scores, every[pairs[:, 0], pairs[:, 1]])


def test_the_layout_neighbours_see_a_hash_and_its_complement():
    from search.store.vectors.neighbours import nearest_layouts

    rng = np.random.default_rng(5)
    hashes = rng.integers(-(2**63), 2**63 - 1, size=3_000, dtype=np.int64)
    hashes[2_000:2_100] = hashes[:100] ^ 3  # two bits flipped
    hashes[2_100:2_200] = ~hashes[100:200]  # the other sign of the colour axis: the same layout
    for exact_up_to in (20_000, 1_000):  # an exact search, then an inverted file
        found = nearest_layouts(hashes, 4, exact_up_to=exact_up_to)
        assert (found[:100, 0] == np.arange(2_000, 2_100)).mean() >= 0.95
        assert (found[100:200, 0] == np.arange(2_100, 2_200)).mean() >= 0.95
        assert not (found == np.arange(3_000)[:, None]).any()
        assert all(len(set(row[row >= 0])) == (row >= 0).sum() for row in found)


def test_images_without_a_picture_hash_can_only_be_identical():
    vectors = np.ones((3, 4), dtype=np.float32) / 2  # the same meaning
    prints = Fingerprints(ids=np.array([1, 2, 3]), paths=["/a.png", "/b.png", "/c.png"],
                          content_hashes=["x", "x", "y"], picture_hashes=np.zeros(3, dtype=np.int64),
                          hashed=np.array([False, False, False]), pixels=np.array([4, 4, 9]),
                          dates=np.array([2.0, 1.0, 0.0]))
    pictures = Looks(lambda row: Image.new("RGB", (64, 64), "red"))  # the same pixels too
    duplicates = build(prints, vectors, np.ones(3, dtype=bool), 0.5, pictures)
    assert [[(i.id, i.reason, i.why) for i in g.images] for g in duplicates.groups] == [
        [(2, "identical", "kept: the oldest of the largest"), (1, "identical", "the same bytes")]]
    assert duplicates.groups[0].keep.id == 2  # the same pixels: the older file


def test_fingerprints_and_byte_copies_on_each_catalog(indexer, catalog_url, tmp_path):
    """On SQLite and PostgreSQL: every indexed image gets its (signed 64-bit) picture hash, and
    a byte copy is grouped with its source as identical."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        render(random.Random(i), side=96, count=1).image.save(folder / f"{i}.png")
    (folder / "copy.png").write_bytes((folder / "1.png").read_bytes())
    _, collection = indexer(folder, url=catalog_url, captions=False)
    prints = collection.catalog.listing.fingerprints()
    assert prints.hashed.all() and len(set(prints.picture_hashes.tolist())) == 3
    want = {picture_hash(Image.open(folder / name)) for name in ("0.png", "1.png", "2.png")}
    assert set(prints.picture_hashes.tolist()) == want
    found = groups(collection).groups
    assert [sorted(i.path.rsplit("/", 1)[1] for i in g.images) for g in found] == [["1.png", "copy.png"]]
    assert {i.reason for i in found[0].images} == {"identical"}


def test_a_chain_of_near_pairs_does_not_make_one_group():
    """A-B and B-C are near pairs, A-C is not: B joins the kept A, C stays out rather than
    riding in on B."""
    table = {(0, 1): 0.9, (1, 2): 0.8, (0, 2): 0.3}

    def similar(keep: int, rows: np.ndarray) -> np.ndarray:
        return np.array([table[tuple(sorted((keep, int(row))))] for row in rows])

    rank = {0: (0,), 1: (1,), 2: (2,)}  # A is the one to keep
    joined = _join(np.array([[0, 1], [1, 2]]), np.array([0.9, 0.8]), rank, similar, 0.5)
    assert joined == [[(0, 1.0), (1, 0.9)]]


def test_the_inverted_file_finds_planted_neighbours():
    """Above EXACT_UP_TO the neighbours come from an inverted file (forced here at 4,000):
    each planted copy is still its original's nearest, and the original the copy's."""
    from search.store.vectors.neighbours import nearest

    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((4_000, 64)).astype(np.float32)
    vectors[3_000:] = vectors[:1_000] + 0.05 * rng.standard_normal((1_000, 64))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    found, cosines = nearest(vectors, 4, exact_up_to=1_000)
    assert (found[:1_000, 0] == np.arange(3_000, 4_000)).mean() >= 0.99
    assert (found[3_000:, 0] == np.arange(1_000)).mean() >= 0.99
    assert np.all(np.diff(cosines, axis=1) <= 1e-6) and not (found == np.arange(4_000)[:, None]).any()


def test_content_agrees_for_a_copy_and_not_for_an_inverted_or_mirrored_picture():
    from PIL import ImageOps

    from search.query.agreement import Look, compare

    sample = render(random.Random(11), side=256, count=2, soft=True).image
    assert not _mirror_symmetric(sample)
    copy = ImageEnhance.Brightness(sample.crop((8, 6, 246, 250)).resize((150, 150))).enhance(0.85)
    original = Look.of(sample)
    agreed = compare(original, Look.of(copy), None, None)
    assert agreed.pixels >= 0.5 and agreed.text is None and agreed.light < 0.95
    assert compare(original, Look.of(ImageOps.invert(sample)), None, None).pixels == 0
    assert compare(original, Look.of(ImageOps.mirror(sample)), None, None).pixels == 0
    page = "INVOICE No. 1234 Bill to Ada Lovelace Whiteboard 6 384.00 Total 2304.00 EUR"
    other = "INVOICE No. 9876 Bill to Alan Turing Stapler 3 364.00 Total 1092.00 EUR"
    assert compare(original, Look.of(copy), page, page).score == agreed.pixels  # the same words: 1
    assert compare(original, Look.of(copy), page, other).score == 0  # the same picture, other words


def test_text_pairs_join_nearly_the_same_words_only():
    from search.query.agreement import text_pairs

    words = [f"word{i}" for i in range(40)]
    texts = [" ".join(words), " ".join(words[:39] + ["worb39"]),  # one word misread
             " ".join(words[:20] + [f"other{i}" for i in range(20)]),  # half the words differ
             "too few words", None]
    assert text_pairs(texts, np.arange(5), 16).tolist() == [[0, 1]]


def _mirror_symmetric(image) -> bool:
    from tests.support.mixed_duplicates import _symmetric

    return _symmetric(image)
