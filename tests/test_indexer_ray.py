"""Indexing on Ray Data: the local indexer's catalog, and a job killed midway resumes from its shards.

One local Ray instance serves the module (2 CPUs, a small object store, no dashboard); the
CLI runs connect to it by address. The folder: the hostile files plus 100 shapes images.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from demo import shapes
from indexer.pipeline import IndexOptions, index_paths
from search.collection import Collection
from search.query.searcher import Searcher, SearchOptions
from tests.support.corpus import all_vectors
from tests.support.hostile import build_hostile_folder
from tests.support.needs import missing

pytestmark = pytest.mark.ray  # each test starts a local Ray instance of its own

HARNESS = Path(__file__).parent / "support" / "crash_harness.py"
SHARD_SIZE = 16
BATCH_SIZE = 16
QUERIES = ("a red circle", "a small blue square on a white background")


@pytest.fixture(scope="module")
def ray_address():
    try:
        import ray
    except ImportError:
        missing('Ray (pip install "blip2-search[distributed]")')
    # address="local": an instance of its own, never one that already runs on the machine
    context = ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=300 << 20,
                       logging_level="WARNING", log_to_driver=False)
    yield context.address_info["address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray") / "files"
    build_hostile_folder(root)
    shapes.write_collection(root / "shapes", seed=21, count=100)
    return root


@pytest.fixture(scope="module")
def local_index(folder, engines) -> tuple[Path, dict]:
    index = folder.parent / "local"
    collection = Collection.open(index, create=True)
    try:
        options = IndexOptions(batch_size=BATCH_SIZE, workers=0)
        summary = index_paths(collection, engines["opt"], [folder], options)
    finally:
        collection.close()
    return index, summary.model_dump(mode="json")


@pytest.fixture(scope="module")
def ray_index(ray_address, folder, tiny_dirs) -> tuple[Path, dict]:
    index = folder.parent / "on-ray"
    return index, _index_on_ray(index, folder, tiny_dirs["opt"]).model_dump(mode="json")


def _index_on_ray(index: Path, folder: Path, model: Path):
    from indexer.ray.driver import RayOptions, index_on_ray
    from tests.support.engines import FLOAT32

    collection = Collection.open(index, create=True)
    try:
        return index_on_ray(collection, str(model), [folder], options=IndexOptions(batch_size=BATCH_SIZE),
                            ray=RayOptions(shard_size=SHARD_SIZE, device="cpu", precision=FLOAT32))
    finally:
        collection.close()


def _cli(*argv: str, mode: str = "none", n: int = 0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HARNESS), mode, str(n), "--", "index", *argv],
                          capture_output=True, text=True, timeout=300)


def _catalog(index: Path, root: Path) -> dict[str, tuple]:
    """{path: (row fields, (Q, D) vectors or None)} of every image under `root`."""
    collection = Collection.open(index)
    try:
        return {path: ((r.status, r.error, r.caption, r.text, r.picture_hash, r.width, r.height,
                        r.content_hash, r.taken_at),
                       collection.vectors_of(r.id))
                for path, r in collection.catalog.under(str(root)).items()}
    finally:
        collection.close()


def _min_cosine(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    cosines = [1.0]
    for path, (_, va) in a.items():
        vb = b[path][1]
        assert (va is None) == (vb is None), path
        if va is not None:
            va, vb = va.astype(np.float32), vb.astype(np.float32)
            cosines.append(float(((va * vb).sum(-1) / np.linalg.norm(va, axis=-1)
                                  / np.linalg.norm(vb, axis=-1)).min()))
    return min(cosines)


def _search(index: Path, engine) -> list[list[str]]:
    collection = Collection.open(index)
    try:
        searcher = Searcher(collection, engine)
        return [[hit.path for hit in searcher.search(q, SearchOptions(k=10))] for q in QUERIES]
    finally:
        collection.close()


def _shards(index: Path) -> int:
    return len(list((index / "ray-shards").glob("*.parquet")))


def _rows(index: Path) -> tuple[int, int, int]:
    """(rows, distinct paths, vector rows) in the catalog."""
    with sqlite3.connect(index / "catalog.db") as db:
        rows, paths = db.execute("SELECT count(*), count(DISTINCT path) FROM images").fetchone()
        return rows, paths, db.execute("SELECT count(*) FROM vectors").fetchone()[0]


def test_ray_gives_the_local_indexers_catalog(local_index, ray_index, folder, engines):
    (local, here), (on_ray, there) = local_index, ray_index
    for key in ("added", "updated", "moved", "removed", "unchanged", "failed", "text"):
        assert there[key] == here[key], key
    assert sorted(there["errors"], key=str) == sorted(here["errors"], key=str)  # same files, same reasons
    assert there["failed"] == 6 and there["added"] > 100
    assert there["model_calls"] > 0
    total = -(-(there["added"] + there["failed"]) // SHARD_SIZE)
    assert there["shards"] == {"total": total, "computed": total, "reused": 0}
    expected, got = _catalog(local, folder), _catalog(on_ray, folder)
    assert {p: fields for p, (fields, _) in got.items()} == {p: fields for p, (fields, _) in expected.items()}
    assert _min_cosine(expected, got) >= 0.999
    assert _search(on_ray, engines["opt"]) == _search(local, engines["opt"])
    assert _shards(on_ray) == 0  # every shard merged, then removed


def test_unchanged_rerun_makes_no_model_call(ray_index, folder, tiny_dirs, tmp_path):
    index, first = ray_index
    shutil.copytree(index, tmp_path / "again")  # the module's index stays as the first run left it
    again = _index_on_ray(tmp_path / "again", folder, tiny_dirs["opt"]).model_dump(mode="json")
    assert again["model_calls"] == 0
    assert again["unchanged"] == first["added"] + first["failed"]
    assert (again["added"], again["failed"], again["shards"]["total"]) == (0, 0, 0)


def test_killed_job_resumes_from_its_shards(ray_address, ray_index, folder, tiny_dirs):
    """The first run joins the module's Ray instance by address; the second, with no address,
    starts a local one of its own (and stops it before it merges)."""
    index = folder.parent / "killed"
    argv = (str(folder), "--index", str(index), "--model", str(tiny_dirs["opt"]),
            "--batch-size", str(BATCH_SIZE), "--shard-size", str(SHARD_SIZE))
    files = ray_index[1]["added"] + ray_index[1]["failed"]
    total = -(-files // SHARD_SIZE)

    killed = _cli(*argv, "--ray", ray_address, "--json", mode="after-shard", n=3)  # in the Ray stage
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _shards(index) == 3 and _rows(index)[0] == 0  # shards written, nothing merged

    merging = _cli(*argv, "--ray", mode="after-commit", n=2)  # second shard committed, not removed
    assert merging.returncode == -signal.SIGKILL, merging.stderr
    assert f"{total} shards of up to {SHARD_SIZE} files, 3 finished by an earlier run, " \
           f"{total - 3} to compute" in merging.stderr
    assert _rows(index)[0] == 2 * SHARD_SIZE and _shards(index) == total - 1

    final = _cli(*argv, "--ray", ray_address, "--json")
    assert final.returncode == 0, final.stderr
    summary = json.loads(final.stdout)
    assert summary["shards"] == {"total": total - 2, "computed": 0, "reused": total - 2}
    assert summary["model_calls"] == 0 and summary["unchanged"] == 2 * SHARD_SIZE
    assert summary["added"] + summary["failed"] == files - 2 * SHARD_SIZE
    ok = ray_index[1]["added"]
    assert _rows(index) == (files, files, ok)  # every image once, no vector row twice
    assert _shards(index) == 0
    clean = _catalog(ray_index[0], folder)
    resumed = _catalog(index, folder)
    assert {p: f for p, (f, _) in resumed.items()} == {p: f for p, (f, _) in clean.items()}
    assert _min_cosine(clean, resumed) >= 0.999
    collection = Collection.open(index)
    try:
        ids, _ = all_vectors(collection)
        assert len(ids) == len(set(ids.tolist())) == ok
    finally:
        collection.close()


def test_missing_path_is_a_one_line_error(tmp_path, tiny_dirs):
    _backend()  # without Ray, the error is the one below
    result = _cli(str(tmp_path / "nowhere"), "--ray", "--index", str(tmp_path / "index"),
                  "--model", str(tiny_dirs["opt"]), "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"blip2-search: error: {tmp_path / 'nowhere'} does not exist; nothing was changed"]


def test_without_ray_the_cli_says_what_to_install(tmp_path, tiny_dirs):
    (tmp_path / "photos").mkdir()
    code = ("import sys; sys.modules['ray'] = None; from cli.main import main; "
            "sys.exit(main(sys.argv[1:]))")
    result = subprocess.run(
        [sys.executable, "-c", code, "index", str(tmp_path / "photos"), "--ray", "--index",
         str(tmp_path / "index"), "--model", str(tiny_dirs["opt"])],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        'blip2-search: error: Ray is not installed: pip install "blip2-search[distributed]"']


def test_shards_are_named_by_their_files():
    _, shards = _backend()
    files = [(f"/p/{i:03d}.png", f"h{i}") for i in range(40)]
    specs = shards.cut(list(reversed(files)), 16, salt="m")
    assert [len(s.files) for s in specs] == [16, 16, 8]
    assert [s.paths for s in specs] == [[p for p, _ in files[i : i + 16]] for i in (0, 16, 32)]
    assert [s.name for s in shards.cut(files, 16, salt="m")] == [s.name for s in specs]
    assert shards.cut(files[16:], 16, salt="m")[0].name == specs[1].name  # the tail is stable
    assert shards.cut(files, 16, salt="other")[0].name != specs[0].name
    changed = [(p, h + "x") if i == 3 else (p, h) for i, (p, h) in enumerate(files)]
    assert shards.cut(changed, 16, salt="m")[0].name != specs[0].name


def test_a_worker_loads_neither_the_catalog_nor_the_vector_index():
    """A Ray actor imports the embedding step and the model, not SQLAlchemy or FAISS."""
    code = ("import sys; from search.config import Precision; from indexer.ray.data import Embedder; "
            "Embedder('demo', 'cpu', Precision(), captions=True, threads=1); "
            "print(sorted({'sqlalchemy', 'faiss', 'alembic'} & sys.modules.keys()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_actor_layout_leaves_a_cpu_for_reading():
    raydata, _ = _backend()
    job, plan_layout = raydata.Job(model="demo"), raydata.plan_layout
    two = plan_layout(job, [{"CPU": 2.0}])
    assert (two.actors, two.num_cpus, two.num_gpus, two.threads, two.device) == (1, 1.0, 0, 2, "cpu")
    assert plan_layout(job, [{"CPU": 1.0}]).num_cpus == 0.5
    assert plan_layout(job, [{"CPU": 0.0}, {"CPU": 8.0}, {"CPU": 16.0}]).actors == 2  # head has no CPU
    gpus = plan_layout(job, [{"CPU": 16.0, "GPU": 2.0}, {"CPU": 16.0, "GPU": 2.0}])
    assert (gpus.actors, gpus.num_gpus, gpus.device) == (4, 1, "cuda")


def _backend():
    """(indexer.ray.data, indexer.ray.shards); a missing Ray or pyarrow is the component
    missing, any other import error a failure."""
    try:
        from indexer.ray import data, shards
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in ("ray", "pyarrow"):
            raise
        missing('Ray (pip install "blip2-search[distributed]")')
    return data, shards
