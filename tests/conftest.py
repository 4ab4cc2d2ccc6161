"""Shared fixtures: tiny BLIP-2 checkpoints written once per session, and seeded images."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from search.demo.tiny import write_tiny_pair
from search.models import Blip2Engine
from search.presets import PRESETS

REAL_DTYPE = os.environ.get("BLIP2_SEARCH_TEST_DTYPE", "float32")


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
    return {name: Blip2Engine.load(str(path), device="cpu", query_dtype="float32")
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
    engine = Blip2Engine.load(preset, dtype=REAL_DTYPE, query_dtype="float32")
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


def make_images(seed: int, count: int) -> list[Image.Image]:
    """Seeded images of mixed sizes and modes, with structure (blocks of colour) and noise."""
    rng = np.random.default_rng(seed)
    modes = ["RGB", "L", "RGBA", "P", "CMYK", "I;16", "LA", "RGB"]
    images = []
    for i in range(count):
        side_w, side_h = (int(v) for v in rng.integers(20, 90, size=2))
        base = rng.integers(0, 256, size=(side_h // 4 + 1, side_w // 4 + 1, 3), dtype=np.uint8)
        pixels = np.kron(base, np.ones((4, 4, 1), dtype=np.uint8))[:side_h, :side_w]
        pixels = np.clip(pixels + rng.integers(-20, 20, size=pixels.shape), 0, 255).astype(np.uint8)
        rgb = Image.fromarray(pixels, "RGB")
        mode = modes[i % len(modes)]
        if mode == "I;16":
            gray = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
            images.append(Image.fromarray(gray))  # uint16 -> mode I;16
        elif mode == "P":
            images.append(rgb.quantize(colors=32))
        else:
            images.append(rgb.convert(mode))
    return images


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    return make_images(seed=7, count=8)


def write_corpus(folder: Path, count: int, seed: int = 0, side: int = 32) -> list[Path]:
    """`count` distinct small PNGs (random blocks of colour) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        base = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        pixels = np.kron(base, np.ones((side // 4, side // 4, 1), dtype=np.uint8))
        path = folder / f"img{i:04d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


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


@pytest.fixture(scope="module")
def served_index(tmp_path_factory, tiny_dirs) -> dict:
    """A small index built by the real pipeline, and settings for an app over it."""
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection
    from search.config import load_settings
    from search.models import Blip2Engine

    root = tmp_path_factory.mktemp("served")
    write_corpus(root / "photos", 10, seed=11)
    collection = Collection.open(root / "index", create=True)
    engine = Blip2Engine.load(str(tiny_dirs["opt"]), device="cpu")
    index_paths(collection, engine, [root / "photos"], IndexOptions(workers=0))
    collection.close()
    settings = load_settings(index=root / "index", model=str(tiny_dirs["opt"]), workers=0, device="cpu")
    return {"root": root, "settings": settings}


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A PostgreSQL URL to create databases from: BLIP2_SEARCH_TEST_POSTGRES_URL (set by
    .ci/run), else a throwaway server started here (tests/postgres.py)."""
    import postgres
    from needs import missing

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


@pytest.fixture(params=["sqlite", "postgresql"])
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


def all_vectors(collection) -> tuple[np.ndarray, np.ndarray]:
    """(ids, (n, Q, D) float32 vectors) of every indexed image, in id order."""
    chunks = list(collection.iter_vectors())
    if not chunks:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 0, 0), dtype=np.float32)
    ids = np.concatenate([ids for ids, _ in chunks])
    order = np.argsort(ids, kind="stable")
    vectors = np.concatenate([v.astype(np.float32) for _, v in chunks])
    return ids[order], vectors[order]


@pytest.fixture(scope="session")
def duplicate_index(tmp_path_factory) -> dict:
    """A generated set of duplicates and look-alikes (tests/duplicate_images.py, the test seed)
    indexed by the real pipeline with the demo model; a byte copy of an original is made the
    oldest file of its group, so that it is the one to keep."""
    from duplicate_images import TEST_SEED, write_set

    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection
    from search.config import load_settings
    from search.models import Blip2Engine

    root = tmp_path_factory.mktemp("duplicates")
    made = write_set(root / "photos", TEST_SEED)
    source, twin = made.identical[0]
    os.utime(twin, (946_684_800, 946_684_800))  # 2000-01-01: older than every other file
    collection = Collection.open(root / "index", create=True)
    engine = Blip2Engine.load("demo", device="cpu")
    index_paths(collection, engine, [root / "photos"], IndexOptions(workers=0, captions=False))
    collection.close()
    settings = load_settings(index=root / "index", model="demo", workers=0, device="cpu")
    return {"root": root, "set": made, "settings": settings, "oldest_twin": (source, twin)}


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, through Playwright: one a module (Playwright's sync API runs one at a time)."""
    from browsing import chromium

    yield from chromium()
