"""The catalog: migrations, writes, moves, deletes, filters and full-text search."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime

import numpy as np
import pytest
from sqlalchemy import DateTime, bindparam, create_engine, inspect, text

from search.records import ImageFile, Selection
from search.store.catalog import Catalog

SHAPE = (4, 8)


@pytest.fixture
def catalog(catalog_url):
    """The same tests on SQLite and on PostgreSQL (conftest's `catalog_url`)."""
    catalog = Catalog.open(catalog_url)
    yield catalog
    catalog.close()


def _image(path, caption=None, **extra):
    fields = {"root": "/r", "content_hash": path, "size": 1, "mtime": 1_700_000_000.0, "caption": caption,
              "vectors": np.full(SHAPE, 0.5, dtype=np.float16)}
    return ImageFile(path=path, **(fields | extra))


@contextmanager
def _migrated_to(catalog_url: str, revision: str):
    """A connection in a transaction to the catalog at `catalog_url`, migrated to `revision`."""
    from alembic import command
    from alembic.config import Config

    from search.store.catalog.database import MIGRATIONS

    engine = create_engine(catalog_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            yield connection
    finally:
        engine.dispose()


def test_schema_is_migrated_and_versioned(catalog_url, catalog):
    engine = create_engine(catalog_url)
    tables = set(inspect(engine).get_table_names())
    assert {"images", "vectors", "features", "meta", "albums", "album_images", "alembic_version"} <= tables
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0010"
        if engine.dialect.name == "sqlite":
            assert "images_fts" in tables
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        else:  # caption search reads a generated column with a GIN index (migration 0002)
            columns = {column["name"] for column in inspect(engine).get_columns("images")}
            indexes = {index["name"] for index in inspect(engine).get_indexes("images")}
            assert "caption_terms" in columns and "ix_images_caption_terms" in indexes
    engine.dispose()
    Catalog.open(catalog_url).close()  # opening again migrates nothing and fails nothing


def test_rows_written_before_migration_0005_are_dated_by_it(catalog_url):
    """A catalog at 0004 with an EXIF-dated row and a row dated by its file: the upgrade fills
    `dated` with the rule new rows are written with (`dates.seconds`)."""
    from search.store.catalog.dates import seconds

    taken = datetime(2021, 6, 5, 14, 30)
    with _migrated_to(catalog_url, "0004") as connection:
        for path, when in (("/r/exif.png", taken), ("/r/file.png", None)):
            insert = text("INSERT INTO images (path, root, content_hash, size, mtime, taken_at, status, "
                          "indexed_at) VALUES (:path, '/r', :hash, 1, 1700000000.5, :taken, 'ok', :now)")
            connection.execute(insert.bindparams(bindparam("taken", type_=DateTime)),
                               {"path": path, "hash": path, "taken": when, "now": datetime(2026, 1, 1)})
    catalog = Catalog.open(catalog_url)
    try:
        prints = catalog.listing.fingerprints()
        newest_first = [catalog.get(i).path for i in catalog.listing.page(Selection(), 0, 10, "newest")[1]]
    finally:
        catalog.close()
    assert dict(zip(prints.paths, prints.dates.tolist(), strict=True)) == {
        "/r/file.png": 1_700_000_000.5, "/r/exif.png": seconds(taken, 0.0)}
    assert newest_first == ["/r/file.png", "/r/exif.png"]  # November 2023, then June 2021


def test_rows_written_before_migration_0006_stay_published(catalog_url):
    """A catalog at 0005 with two rows at generation 2: after the upgrade both are seen, the
    published generation is the catalog's (a snapshot tagged 2 still matches), and a write
    that does not publish is seen by no reader until the catalog publishes."""
    with _migrated_to(catalog_url, "0005") as connection:
        for path in ("/r/a.png", "/r/b.png"):
            insert = text("INSERT INTO images (path, root, content_hash, size, mtime, status, indexed_at) "
                          "VALUES (:path, '/r', :hash, 1, 1.0, 'ok', :now)")
            connection.execute(insert, {"path": path, "hash": path, "now": datetime(2026, 1, 1)})
        connection.execute(text("INSERT INTO meta (key, value) VALUES ('generation', '2')"))
    catalog = Catalog.open(catalog_url)
    try:
        assert (catalog.generation, catalog.published) == (2, 2)
        assert catalog.stats()["images"] == 2
        [new] = catalog.write([_image("/r/c.png", "a star")], publish=False)
        assert catalog.stats()["images"] == 2 and catalog.get(new) is None
        assert catalog.at_path("/r/c.png") is None
        assert catalog.publish() and catalog.stats()["images"] == 3 and catalog.get(new).caption == "a star"
        assert not catalog.publish()  # nothing waits
    finally:
        catalog.close()


def test_an_unpublished_change_waits_in_a_second_row_and_keeps_the_id(catalog):
    """A published row written again without publishing: readers keep the old content (row,
    vectors, full text) until the catalog publishes, then the row has the new content under
    its id and path, and no second row is left. A removal waits for the publish too."""
    a, b = catalog.write([_image("/r/a.png", "a red circle"), _image("/r/b.png", "a blue square")])
    changed = _image("/r/a.png", "a green star", vectors=np.full(SHAPE, 0.25, dtype=np.float16))
    assert catalog.write([changed], publish=False) == [a]
    assert catalog.write([changed], publish=False) == [a]  # written twice: one second row
    assert catalog.get(a).caption == "a red circle" and catalog.fulltext.caption_search("green", 5) == []
    np.testing.assert_array_equal(catalog.vectors.one(a, SHAPE), np.full(SHAPE, 0.5))
    assert catalog.stats() == {"images": 2, "videos": 0, "moments": 0, "failed": 0, "with_vectors": 2}
    assert catalog.publish(removed=[b])
    assert catalog.get(a).caption == "a green star" and catalog.get(a).path == "/r/a.png"
    assert catalog.fulltext.caption_search("green", 5) == [a]
    assert catalog.fulltext.caption_search("red", 5) == []
    np.testing.assert_array_equal(catalog.vectors.one(a, SHAPE), np.full(SHAPE, 0.25))
    assert catalog.stats() == {"images": 1, "videos": 0, "moments": 0, "failed": 0, "with_vectors": 1}
    assert catalog.get(b) is None
    assert [ids.tolist() for ids, _ in catalog.vectors.iterate(SHAPE)] == [[a]]


def test_texts_written_before_migration_0007_are_found_as_the_rule_finds_them(catalog_url):
    """A catalog at 0005 holding `HOWSE` and `Grüße`: the upgrade writes their keys and makes
    the trigram index over them, so `house` (a slip sharing no trigram) and `grusse` find them."""
    with _migrated_to(catalog_url, "0006") as connection:
        insert = text("INSERT INTO images (path, root, content_hash, size, mtime, text, status, indexed_at) "
                      "VALUES (:path, '/r', :hash, 1, 1.0, :text, 'ok', :now)")
        for path, written in (("/r/sign.png", "HOWSE"), ("/r/card.png", "Grüße"), ("/r/none.png", None)):
            values = {"path": path, "hash": path, "text": written, "now": datetime(2026, 1, 1)}
            connection.execute(insert, values)
    catalog = Catalog.open(catalog_url)
    try:
        ids = {catalog.get(i).path: i for i in catalog.listing.page(Selection(), 0, 9)[1]}
        assert catalog.fulltext.text_scores("house") == {ids["/r/sign.png"]: pytest.approx(0.64)}
        assert catalog.fulltext.text_scores("grusse") == {ids["/r/card.png"]: 1.0}
        catalog.set_readings({ids["/r/none.png"]: ("Strasse", None)})  # the key is written with the text
        assert set(catalog.fulltext.text_scores("straße")) == {ids["/r/none.png"]}
    finally:
        catalog.close()




def test_write_replaces_by_path_and_bumps_generation(catalog):
    [first] = catalog.write([_image("/r/a.png", "a red circle")])
    assert catalog.generation == 1
    [again] = catalog.write([_image("/r/a.png", "a blue square")])
    assert again == first and catalog.generation == 2
    assert catalog.get(first).caption == "a blue square"
    np.testing.assert_array_equal(catalog.vectors.one(first, SHAPE), np.full(SHAPE, 0.5))


def test_a_large_mixed_batch_is_written_in_order(catalog):
    """More rows than one statement binds, new and replaced mixed, a path twice: ids come back
    in the order given and the last record of a path wins, with its vectors."""
    old = catalog.write([_image(f"/r/{i}.png", "old") for i in range(0, 2500, 2)])
    batch = [_image(f"/r/{i}.png", f"new {i}", vectors=np.full(SHAPE, i % 7, dtype=np.float32))
             for i in range(2500)]
    batch.append(_image("/r/3.png", "last", vectors=np.zeros(SHAPE, dtype=np.float32)))
    ids = catalog.write(batch)
    assert ids[0:2500:2] == old and len(set(ids)) == 2500 and ids[-1] == ids[3]
    assert catalog.get(ids[10]).caption == "new 10" and catalog.get(ids[3]).caption == "last"
    np.testing.assert_array_equal(catalog.vectors.one(ids[10], SHAPE), np.full(SHAPE, 3))
    np.testing.assert_array_equal(catalog.vectors.one(ids[3], SHAPE), np.zeros(SHAPE))
    assert catalog.stats() == {"images": 2500, "videos": 0, "moments": 0, "failed": 0, "with_vectors": 2500}
    assert catalog.fulltext.caption_search("last", 5) == [ids[3]]


@pytest.mark.parametrize("count", [5, 1300])  # 1,300: read on several connections at once
def test_vectors_many_in_id_order_without_missing_ids(catalog, count):
    rng = np.random.default_rng(count)
    vectors = rng.normal(size=(count, *SHAPE)).astype(np.float16).astype(np.float32)
    ids = np.array(catalog.write([_image(f"/r/{i}.jpg", vectors=vectors[i]) for i in range(count)]))
    asked = np.concatenate([rng.permutation(ids), ids[:2], [ids.max() + 7]])  # twice, and missing
    found, got = catalog.vectors.many(asked, SHAPE)
    assert found.tolist() == sorted(ids.tolist())
    np.testing.assert_array_equal(got, vectors[np.searchsorted(ids, found)])
    # `each` sees every part's vectors where it was read; the caller gets its results, in order
    sizes = []
    found, best = catalog.vectors.many(asked, SHAPE, each=lambda part: sizes.append(len(part)) or
                                       part.max(axis=(1, 2)))
    assert found.tolist() == sorted(ids.tolist()) and sum(sizes) == count
    assert (len(sizes) > 1) == (count >= 256)  # several connections for a large request only
    np.testing.assert_array_equal(best, vectors[np.searchsorted(ids, found)].max(axis=(1, 2)))


def test_failed_rows_have_no_vectors(catalog):
    [image_id] = catalog.write([_image("/r/bad.jpg", error="not an image", vectors=None)])
    assert catalog.vectors.one(image_id, SHAPE) is None
    assert catalog.stats() == {"images": 0, "videos": 0, "moments": 0, "failed": 1, "with_vectors": 0}
    assert (catalog.get(image_id).status, catalog.get(image_id).error) == ("failed", "not an image")


def test_remove_cascades_and_iter_vectors(catalog):
    ids = catalog.write([_image(f"/r/{i}.png") for i in range(5)])
    catalog.remove(ids[:2])
    got = np.concatenate([chunk for chunk, _ in catalog.vectors.iterate(SHAPE, chunk=2)])
    assert got.tolist() == ids[2:]
    assert catalog.stats()["with_vectors"] == 3


def test_move_keeps_id_and_caption(catalog):
    [image_id] = catalog.write([_image("/r/a.png", "a star")])
    generation = catalog.generation
    catalog.move(image_id, path="/r/b.png", root="/r", size=1, mtime=2.0)
    assert catalog.at_path("/r/b.png").caption == "a star"
    assert catalog.generation == generation  # vectors untouched: the snapshot stays current


@pytest.mark.parametrize("query", ['"', "red OR", "NEAR(", "circle*", "'; DROP TABLE images; --",
                                   "AND AND", "col:red", "(((", "^", "red -circle", "日本"])
def test_caption_search_escapes_any_user_text(catalog, query):
    written = catalog.write([_image("/r/a.png", "a red circle"), _image("/r/b.png", "a blue square")])
    result = catalog.fulltext.caption_search(query, limit=5)
    words = {"red": written[0], "circle": written[0]}  # the only words of these queries a caption holds
    assert set(result) == {words[w] for w in words if w in query.lower()}


def test_caption_search_ranks_and_follows_updates(catalog):
    a, b = catalog.write([_image("/r/a.png", "a red circle"), _image("/r/b.png", "a blue square")])
    assert catalog.fulltext.caption_search("red circle", 5) == [a]
    catalog.write([_image("/r/a.png", "a green star")])
    assert catalog.fulltext.caption_search("red", 5) == []
    assert catalog.fulltext.caption_search("green", 5) == [a]
    catalog.remove([a])
    assert catalog.fulltext.caption_search("green", 5) == []
    assert catalog.fulltext.caption_search("square", 5) == [b]


def test_filters_by_prefix_and_date(catalog):
    old = datetime(2020, 5, 1).timestamp()
    ids = catalog.write([
        _image("/r/2020/a.png", mtime=old),
        _image("/r/2024/b.png", taken_at=datetime(2024, 7, 1)),
        _image("/r/2024/c.png", mtime=datetime(2024, 1, 1).timestamp()),
        _image("/r/2024/d.png", vectors=None),
    ])
    listed = catalog.listing.ids
    assert listed(Selection(path_prefix="/r/2024/")).tolist() == ids[1:3]
    assert listed(Selection(after=datetime(2023, 1, 1))).tolist() == ids[1:3]
    assert listed(Selection(before=datetime(2024, 3, 1))).tolist() == [ids[0], ids[2]]
    assert listed(Selection(after=datetime(2024, 3, 1), path_prefix="/r/2024")).tolist() == [ids[1]]


def test_a_page_is_ordered_counted_and_cut_by_the_database(catalog):
    """Browse and filter-only listings: newest or oldest first (EXIF date, else modified; ties
    by id) or by path, failed rows left out, the total counted; each page is one statement
    with ORDER BY, OFFSET and LIMIT, never every row's date read into Python."""
    from sqlalchemy import event

    rng = np.random.default_rng(5)
    days = rng.permutation(40)
    images = [_image(f"/r/{rng.integers(1000):03d}-{i}.png", mtime=1_600_000_000.0 + day * 86_400,
                     taken_at=datetime(2020, 1, 1 + day % 28) if i % 3 == 0 else None)
              for i, day in enumerate(days)]
    images[7] = _image("/r/failed.png", vectors=None)
    ids = catalog.write(images)
    readable = [(i, image) for i, image in zip(ids, images, strict=True) if image.vectors is not None]
    date = {i: image.taken_at.timestamp() if image.taken_at else image.mtime for i, image in readable}
    expected = {"newest": sorted(date, key=lambda i: (-date[i], i)),
                "oldest": sorted(date, key=lambda i: (date[i], i)),
                "path": [i for i, _ in sorted(readable, key=lambda pair: pair[1].path)]}
    statements = []
    event.listen(catalog._engine, "before_cursor_execute",
                 lambda conn, cursor, statement, *rest: statements.append(statement))
    for order, want in expected.items():
        for offset, limit in ((0, 5), (5, 7), (35, 10)):
            statements.clear()
            total, page = catalog.listing.page(Selection(), offset, limit, order)
            assert (total, page) == (len(readable), want[offset : offset + limit]), (order, offset)
            [paged] = [sql for sql in statements if "ORDER BY" in sql]
            assert "LIMIT" in paged and "OFFSET" in paged


def test_writers_of_one_database_take_turns(catalog_url, catalog):
    """On PostgreSQL an advisory lock makes writers whose index folders differ take turns;
    on SQLite the index folder's lock is the one that counts."""
    from search.store.lock import IndexBusy

    other = Catalog.open(catalog_url)
    try:
        with catalog.exclusive():
            if catalog_url.startswith("postgresql"):
                with pytest.raises(IndexBusy, match="another writer holds this catalog's database"):
                    with other.exclusive(wait=False):
                        pass
        with other.exclusive(wait=False):  # free again
            assert other.generation == catalog.generation
    finally:
        other.close()


def test_text_search_is_tolerant_and_the_same_on_both_backends(catalog):
    """`text:` through the trigram index of either backend: any case, part of a word, one
    slip, a word split by OCR; every word of a phrase needed; unread and failed rows never."""
    texts = {"/r/sign.png": "Parking RE16 TGK", "/r/note.png": "Please receive the Garden parcel",
             "/r/blank.png": "", "/r/unread.png": None, "/r/menu.png": "GARDEN CAFE\n2 lemonade 7.40"}
    ids = dict(zip(texts, catalog.write([_image(path, text=text) for path, text in texts.items()]),
                   strict=True))
    [failed] = catalog.write([_image("/r/broken.png", text="RE16", vectors=None, error="not an image")])

    def found(phrase: str) -> set[str]:
        by_id = {image_id: path for path, image_id in ids.items()}
        return {by_id[image_id] for image_id in catalog.fulltext.text_scores(phrase)}

    assert found("re16") == found("RE1") == found("E16") == found("re16tgk") == {"/r/sign.png"}
    assert found("recieve") == found("parce") == {"/r/note.png"}  # a swap; part of a word
    assert found("garden") == {"/r/note.png", "/r/menu.png"}
    assert found("garden parcel") == {"/r/note.png"} and found("garden banana") == set()
    assert found("zqxw") == set() and failed not in catalog.fulltext.text_scores("re16")
    scores = catalog.fulltext.text_scores("garden")
    assert scores[ids["/r/note.png"]] == scores[ids["/r/menu.png"]] == 1.0
    assert catalog.fulltext.text_scores("gardn")[ids["/r/note.png"]] < 1.0  # close, not exact
    assert catalog.fulltext.text_search("a garden cafe", 10)[0] == ids["/r/menu.png"]  # the most words first
    assert set(catalog.listing.unread(text=True)) == {ids["/r/unread.png"]}
    catalog.set_readings({ids["/r/unread.png"]: ("Lighthouse", -5)})
    assert found("lighthous") == {"/r/unread.png"} and catalog.listing.unread(text=True) == []
    assert catalog.get(ids["/r/unread.png"]).picture_hash == -5


@pytest.mark.slow  # 70,003 rows written on each backend
def test_broad_filters_over_70000_images_stay_in_the_database(catalog):
    """`caption:` and `text:` filters that let every one of 70,003 images through, nine at once:
    more ids than a statement takes as parameters (32,766 on SQLite, 65,535 on PostgreSQL)."""
    count = 70_003
    for start in range(0, count, 10_000):
        catalog.write([_image(f"/r/{i}.png", caption=f"a red triangle number {i}",
                              text=f"OPEN DAILY {i % 7}") for i in range(start, min(start + 10_000, count))])
    broad = Selection(caption=("triangle", "red", "a red triangle", "number", "red triangle"),
                      text=("open", "daily", "open daily", "OPEN"))
    assert catalog.listing.page(Selection(caption=("triangle",)), 0, 3)[0] == count
    assert catalog.listing.page(Selection(text=("open",)), 0, 3)[0] == count
    total, page = catalog.listing.page(broad, 10, 5, "path")
    assert total == count and len(page) == 5
    assert len(catalog.listing.ids(broad)) == count
    assert catalog.listing.page(Selection(caption=("triangle",), text=("closed",)), 0, 3) == (0, [])


def test_any_file_name_is_kept_and_read_back_as_it_was(catalog):
    """POSIX names are bytes: a Latin-1 name reaches Python with lone surrogates, which no
    text column stores. It is written, found by its path and by its folder, and read back
    the same; the escape character itself round-trips."""
    latin = "/r/caf\udce9/\udce9t\udce9.png"  # os.fsdecode(b"/r/caf\xe9/\xe9t\xe9.png")
    odd = "/r/odd\U0010fffd\udcff.png"
    plain = "/r/café.png"
    ids = catalog.write([_image(path, content_hash=f"h{i}",
                                error=f"cannot read {path}" if path == odd else None,
                                vectors=None if path == odd else np.full(SHAPE, 0.5, dtype=np.float16))
                         for i, path in enumerate((latin, odd, plain))])
    assert [catalog.at_path(path).id for path in (latin, odd, plain)] == ids
    assert catalog.get(ids[0]).path == latin and catalog.get(ids[1]).path == odd
    assert catalog.get(ids[1]).error == "cannot read /r/odd\U0010fffd\\xff.png"  # shown, not stored raw
    assert set(catalog.under("/r/caf\udce9")) == {latin}
    assert catalog.listing.ids(Selection(path_prefix="/r/caf\udce9")).tolist() == [ids[0]]


def test_an_absolute_path_filter_is_a_folder(catalog):
    """`path:/x/shapes` and `--path-prefix /x/shapes` keep /x/shapes and what is under it,
    not /x/shapes_b or /other/x/shapes; a relative `path:` keeps a name that starts with it."""
    paths = ["/x/shapes/a.png", "/x/shapes/deep/b.png", "/x/shapes_b/c.png", "/other/x/shapes/d.png",
             "/x/shapesque.png"]
    ids = dict(zip(paths, catalog.write([_image(path) for path in paths]), strict=True))

    def kept(**given) -> set[str]:
        by_id = {image_id: path for path, image_id in ids.items()}
        return {by_id[i] for i in catalog.listing.ids(Selection(**given)).tolist()}

    inside = {"/x/shapes/a.png", "/x/shapes/deep/b.png"}
    assert kept(path_part="/x/shapes") == kept(path_part="/x/shapes/") == inside
    assert kept(path_prefix="/x/shapes") == inside
    assert kept(path_part="/x/shapes/a.png") == {"/x/shapes/a.png"}
    assert kept(path_part="shapes") == set(paths)  # a folder or file name starting with it
    assert kept(path_part="shapes/") == inside | {"/other/x/shapes/d.png"}
