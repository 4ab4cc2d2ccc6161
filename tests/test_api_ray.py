"""The conformance suite of `serve --ray`: the app on Ray Serve, on a local cluster of three
nodes (`ray.cluster_utils.Cluster`), over the index a one-machine server also serves. The
same requests give the same ids and scores; a node lost under a load of searches costs no
result with two replicas a shard, and makes answers partial (never a 5xx, never a hang)
with one; a shard replica slow to start is waited for."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.browsing import free_port
from tests.support.corpus import write_corpus
from tests.support.needs import missing

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parents[1]
SEARCHES = [{"q": "a red square"}, {"q": "blue", "k": 5, "offset": 2}, {"q": "a cat - a dog", "k": 8},
            {"q": "green text:sale"}, {"q": "text:sale"}, {"q": "path:photos a circle", "k": 6},
            {"q": "yellow", "after": "2000-01-01", "before": "2100-01-01"},
            {"q": "after:2000-01-01 a dot", "sort": "newest", "min_match": 0.0, "k": 6},
            {"q": "a red square", "where": "is it red?=yes", "k": 3, "candidates": 12}]


@pytest.fixture(scope="module")
def index(tmp_path_factory, tiny_dirs, engines) -> dict:
    from indexer.pipeline import IndexOptions, index_paths
    from search.collection import Collection
    from search.config import load_settings

    root = tmp_path_factory.mktemp("rayserve")
    write_corpus(root / "photos", 30, seed=3)
    collection = Collection.open(root / "index", create=True)
    index_paths(collection, engines["opt"], [root / "photos"], IndexOptions(workers=0))
    with collection.writing():  # words on some pictures, for text: filters
        collection.set_readings({i: ("SALE today" if i % 3 == 0 else "closed", None) for i in range(1, 31)})
        collection.save()
    collection.close()
    settings = load_settings(index=root / "index", model=str(tiny_dirs["opt"]), workers=0, device="cpu",
                             threads=1)
    return {"root": root, "settings": settings}


@pytest.fixture(scope="module")
def one_machine(index):
    from api.app import create_app

    with TestClient(create_app(index["settings"])) as client:
        yield client


@pytest.fixture(scope="module")
def cluster():
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        missing('Ray Serve (pip install "blip2-search[distributed]")')
    os.environ["PYTHONPATH"] = str(ROOT)  # the nodes' workers import the project from the checkout
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 3, "resources": {"blip2-search-front": 1}, "include_dashboard": False,
        "object_store_memory": 200 << 20})
    workers = [cluster.add_node(num_cpus=1, object_store_memory=150 << 20) for _ in range(2)]
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    yield cluster, workers
    from ray import serve

    serve.shutdown()
    ray.shutdown()
    cluster.shutdown()


PORT = free_port()  # Serve's HTTP options hold from its first start to its shutdown


def _deploy(index, replicas: int, timeout_s: float = 15.0, **options) -> str:
    from api.ray import launch

    port = PORT
    settings = index["settings"].model_copy(update={"port": port})
    # a deadline far above a shard's answer (milliseconds) on a machine the other tests share
    launch.deploy(settings, shards=3, replicas=replicas, timeout_s=timeout_s, **options)
    return f"http://127.0.0.1:{port}"


def _node_of_a_shard_replica(cluster, workers):
    """A worker node (never the head, which runs the ingress) that holds a shard replica."""
    import ray

    held = {actor["Address"]["NodeID"] for actor in ray._private.state.actors().values()
            if actor["State"] == "ALIVE" and "shard-" in (actor.get("Name") or "")}
    return next(node for node in workers if node.node_id in held)


def test_the_same_answers_as_one_machine_and_a_slow_shard_waited_for(index, one_machine, cluster):
    started = time.monotonic()
    base = _deploy(index, 2, start_delays={0: 6.0})
    assert time.monotonic() - started > 6.0  # deploy returned after the slow replica was up
    with httpx.Client(base_url=base, timeout=30) as client:
        for params in SEARCHES:
            one = one_machine.get("/api/search", params=params)
            many = client.get("/api/search", params=params)
            assert many.status_code == one.status_code == 200, many.text
            one, many = one.json(), many.json()
            assert [h["id"] for h in many["results"]] == [h["id"] for h in one["results"]], params
            assert _scores(many) == pytest.approx(_scores(one), abs=1e-5)
            assert many["partial"] is False and many["missing_shards"] == []
        assert any(len(one_machine.get("/api/search", params=p).json()["results"]) for p in SEARCHES)
        for image_id in (1, 14, 30):
            one = one_machine.get(f"/api/images/{image_id}/similar", params={"k": 9}).json()
            many = client.get(f"/api/images/{image_id}/similar", params={"k": 9}).json()
            assert [h["id"] for h in many["results"]] == [h["id"] for h in one["results"]]
            assert _scores(many) == pytest.approx(_scores(one), abs=1e-5) and len(one["results"]) == 9
        picture = (index["root"] / "photos" / "img0004.png").read_bytes()
        upload = {"files": {"file": ("a.png", picture)}, "params": {"k": 5}}
        one = one_machine.post("/api/search/image", **upload).json()
        many = client.post("/api/search/image", **upload).json()
        assert [h["id"] for h in many["results"]] == [h["id"] for h in one["results"]]
        assert len(one["results"]) == 5
        for path in ("/api/stats", "/api/images?limit=5", "/api/images/3", "/", "/healthz"):
            assert client.get(path).status_code == 200, path
        for method, path, body in (("GET", "/api/images/3/explain?q=a red square", None),
                                   ("POST", "/api/images/3/ask", {"question": "what is it?"}),
                                   ("GET", "/api/search/match?q=a red square&ids=1&ids=2&ids=9", None),
                                   ("GET", "/api/duplicates", None)):
            one, many = one_machine.request(method, path, json=body), client.request(method, path, json=body)
            assert many.status_code == one.status_code == 200, (path, many.text)
            one, many = one.json(), many.json()
            if "matches" in one:  # probabilities: computed apart, equal to float32's rounding
                assert [m["id"] for m in many["matches"]] == [m["id"] for m in one["matches"]] == [1, 2, 9]
                assert [m["match"] for m in many["matches"]] == pytest.approx(
                    [m["match"] for m in one["matches"]], abs=1e-5)
            else:
                assert many == one, path
        assert client.get("/api/stats").json()["images"] == 30


def _scores(found: dict) -> list:
    return [h["score"] for h in found["results"]]  # None for a listing (filters alone)


def _load(base: str, seconds: float, during) -> list[dict]:
    """Searches from four clients for `seconds`, with `during()` called a second in."""
    found, stop = [], threading.Event()

    def client_loop(n: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while not stop.is_set():
                started = time.monotonic()
                response = client.get("/api/search", params={"q": f"colour {n}", "k": 30})
                found.append({"status": response.status_code, "s": time.monotonic() - started,
                              "body": response.json() if response.status_code == 200 else response.text})

    with ThreadPoolExecutor(4) as pool:
        for n in range(4):
            pool.submit(client_loop, n)
        time.sleep(1.0)
        during()
        time.sleep(seconds)
        stop.set()
    return found


def test_losing_a_node_loses_nothing_with_two_replicas_and_is_partial_with_one(index, cluster):
    import ray

    cluster, workers = cluster
    base = _deploy(index, 2)
    lost = _node_of_a_shard_replica(cluster, workers)
    found = _load(base, 8.0, lambda: cluster.remove_node(lost))
    assert found and all(r["status"] == 200 for r in found), [r for r in found if r["status"] != 200][:2]
    assert all(len(r["body"]["results"]) == 30 and not r["body"]["partial"] for r in found)
    cluster.add_node(num_cpus=1, object_store_memory=150 << 20)  # the cluster back to three nodes
    ray.nodes()

    # a deadline shorter than a lost replica's restart elsewhere (it maps its shard again):
    # the answers in between go without that shard
    base = _deploy(index, 1, timeout_s=2.0)
    workers = [node for node in cluster.worker_nodes]
    lost = _node_of_a_shard_replica(cluster, workers)
    found = _load(base, 8.0, lambda: cluster.remove_node(lost))
    assert found and all(r["status"] == 200 for r in found)
    partial = [r["body"] for r in found if r["body"]["partial"]]
    assert partial, "no response went without the lost node's shard"
    assert all(body["missing_shards"] and len(body["results"]) < 30 for body in partial)
    assert max(r["s"] for r in found) < 30  # the deadline (2 s) and the round trip, never a hang
