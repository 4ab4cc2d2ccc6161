"""Shared fixtures: tiny BLIP-2 checkpoints written once per session, and seeded images."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from PIL import Image

from search.models import Blip2Engine
from search.presets import PRESETS
from tests.support.corpus import make_images, write_corpus
from tests.support.engines import EXACT, FLOAT32
from tests.support.tiny import write_tiny_pair

REAL_DTYPE = os.environ.get("BLIP2_SEARCH_TEST_DTYPE", "float32")
NEEDS = {"browser": "browser", "postgres_server": "postgres"}  # a fixture -> the marker of what it needs


def pytest_collection_modifyitems(items):
    """A test that uses Chromium or a PostgreSQL server is marked with what it needs, from its
    fixtures, so `make check` (which leaves them out) cannot miss one. The benchmark smoke
    run, the longest test by far, goes first: on two workers the other takes everything else
    meanwhile, instead of it starting last and running alone."""
    for item in items:
        for fixture, marker in NEEDS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
    items.sort(key=lambda item: item.get_closest_marker("bench") is None)  # stable: the rest keep their order


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory):
    """The int8 weights the tests quantize are cached in a folder of the run's own, never
    the user's."""
    with pytest.MonkeyPatch.context() as patch:
        if "BLIP2_SEARCH_CACHE" not in os.environ:
            patch.setenv("BLIP2_SEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session", autouse=True)
def float32_front_ends():
    """The CLI and the server default to `auto` precision (on a CPU: bfloat16 where it is
    faster, an int8 image encoder where int8 is, an int8 language model). Tests compare
    their output with float32 engines built here, so they run them, and the processes they
    start, at float32 too; the defaults' own agreement is tested in test_search_precision.py."""
    with pytest.MonkeyPatch.context() as patch:
        if "BLIP2_SEARCH_DTYPE" not in os.environ:
            patch.setenv("BLIP2_SEARCH_DTYPE", "float32")
        for stage in ("ENCODER", "DECODER"):
            if f"BLIP2_SEARCH_{stage}_DTYPE" not in os.environ:
                patch.setenv(f"BLIP2_SEARCH_{stage}_DTYPE", "same")
        yield


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    """`opt` and `t5` pairs sharing their encoder; `distinct`: an OPT pair that does not."""
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "opt": write_tiny_pair(root / "opt", decoder="opt", seed=0),
        "t5": write_tiny_pair(root / "t5", decoder="t5", seed=1),
        "distinct": write_tiny_pair(root / "distinct", decoder="opt", seed=0, distinct_encoders=True),
    }


@pytest.fixture(scope="session")
def engines(tiny_dirs) -> dict[str, Blip2Engine]:
    """float32 throughout, text queries included: the parity tests compare them at 1e-5."""
    return {name: Blip2Engine.load(str(path), device="cpu", precision=EXACT)
            for name, path in tiny_dirs.items()}


@dataclass(frozen=True)
class Pair:
    """An engine and the two checkpoint locations the plain-transformers references load."""

    engine: Blip2Engine
    retrieval: str
    generation: str
    tiny: bool

    @property
    def atol(self) -> float:
        return 1e-5 if self.tiny or REAL_DTYPE == "float32" else 2e-2


def _real_pair(preset: str) -> Pair:
    from huggingface_hub import try_to_load_from_cache

    source = PRESETS[preset]
    for repo in (source.retrieval, source.generation):
        if not isinstance(try_to_load_from_cache(repo, "config.json"), str):
            pytest.skip(f"{repo} is not in the local Hugging Face cache")
    engine = Blip2Engine.load(preset, precision=replace(EXACT, dtype=REAL_DTYPE))
    return Pair(engine, source.retrieval, source.generation, tiny=False)


# The same parity and batching tests run on the tiny checkpoints and, under `-m real`, on
# the real presets found in the local Hugging Face cache.
PAIRS = ["opt", "t5", *(pytest.param(name, marks=pytest.mark.real) for name in PRESETS)]


@pytest.fixture(scope="session", params=PAIRS)
def pair(request, tiny_dirs, engines) -> Pair:
    name = request.param
    if name in engines:
        path = tiny_dirs[name]
        return Pair(engines[name], str(path / "retrieval"), str(path / "generation"), tiny=True)
    return _real_pair(name)


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    return make_images(seed=7, count=8)


@pytest.fixture
def indexer(engines, tmp_path):
    """index(*roots, url=None, **options) -> summary, on a fresh collection in tmp_path/index
    (its catalog at the database `url` when given)."""
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection

    opened = []

    def run(*roots, engine=None, url=None, **options):
        collection = Collection.open(tmp_path / "index", create=True, url=url)
        opened.append(collection)
        options.setdefault("workers", 0)
        summary = index_paths(collection, engine or engines["opt"], roots, IndexOptions(**options))
        return summary, collection

    yield run
    for collection in opened:
        collection.close()


def _served(root: Path, tiny_dirs, engine) -> dict:
    """Ten pictures indexed by the real pipeline under `root`, and settings for an app over them."""
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection
    from search.config import load_settings

    write_corpus(root / "photos", 10, seed=11)
    collection = Collection.open(root / "index", create=True)
    index_paths(collection, engine, [root / "photos"], IndexOptions(workers=0))
    collection.close()
    settings = load_settings(index=root / "index", model=str(tiny_dirs["opt"]), workers=0, device="cpu")
    return {"root": root, "settings": settings}


@pytest.fixture(scope="module")
def served_index(tmp_path_factory, tiny_dirs) -> dict:
    """A small index, and settings for an app over it, that the tests of a module read and
    none changes (a test that writes takes `own_index`)."""
    engine = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu", precision=FLOAT32)
    return _served(tmp_path_factory.mktemp("served"), tiny_dirs, engine)


@pytest.fixture
def own_index(tmp_path, tiny_dirs, engines) -> dict:
    """The same index as `served_index`, for one test that changes it: its catalog (an index
    job), its thumbnails or its pictures."""
    return _served(tmp_path / "own", tiny_dirs, engines["opt"])


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A PostgreSQL URL to create databases from: BLIP2_SEARCH_TEST_POSTGRES_URL (set by
    .ci/run), else a throwaway server started here (tests/support/postgres.py)."""
    from tests.support import postgres
    from tests.support.needs import missing

    given = os.environ.get(postgres.ENV)
    if given:
        yield given
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("the psycopg driver")
    if postgres.binaries() is None:
        missing("a PostgreSQL server (Debian: postgresql)")
    folder = Path("/tmp") / f"blip2-pg-{os.getpid()}"  # a Unix socket path must stay short
    try:
        yield postgres.start(folder)
    finally:
        postgres.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog_url(request, tmp_path):
    """A fresh, empty catalog database of each kind: a file in tmp_path, or a new PostgreSQL
    database dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    from sqlalchemy import create_engine, make_url, text

    server = make_url(request.getfixturevalue("postgres_server"))
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def duplicate_index(tmp_path_factory) -> dict:
    """A generated set of duplicates, look-alikes, inverted and mirrored pictures, and documents
    and screenshots of one layout each (tests/support/mixed_duplicates.py, the test seed),
    indexed by the real pipeline with the demo model, OCR on; a byte copy of an original is
    made the oldest file of its group, so that it is the one to keep."""
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection
    from search.config import load_settings
    from search.models import Blip2Engine
    from tests.support.duplicate_images import TEST_SEED
    from tests.support.mixed_duplicates import write_mixed

    root = tmp_path_factory.mktemp("duplicates")
    made = write_mixed(root / "photos", TEST_SEED, documents=4)
    source, twin = made.identical[0]
    os.utime(twin, (946_684_800, 946_684_800))  # 2000-01-01: older than every other file
    collection = Collection.open(root / "index", create=True)
    engine = Blip2Engine.load("demo", device="cpu", precision=FLOAT32)
    index_paths(collection, engine, [root / "photos"], IndexOptions(workers=0, captions=False))
    collection.close()
    settings = load_settings(index=root / "index", model="demo", workers=0, device="cpu")
    return {"root": root, "set": made, "settings": settings, "oldest_twin": (source, twin)}


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, through Playwright: one a module (Playwright's sync API runs one at a time)."""
    from tests.support.browsing import chromium

    yield from chromium()
