"""20 parallel clients search while an index job runs: 200 or a documented 503, and each answer
is the ranking before the job or after it, never a mix."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from api.app import create_app
from tests.support.corpus import write_corpus

pytestmark = pytest.mark.slow  # index jobs and other processes beside a server

QUERY = {"q": "a blue square", "k": 10}


def test_parallel_searches_during_an_index_job(own_index, tmp_path):
    new_folder = tmp_path / "new"
    write_corpus(new_folder, 48, seed=21)
    app = create_app(own_index["settings"].model_copy(update={"queue_size": 8}))

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
                before = (await client.get("/api/search", params=QUERY)).json()["results"]
                job = (await client.post("/api/index", json={"paths": [str(new_folder)]})).json()
                during = []
                while True:
                    wave = await asyncio.gather(*(client.get("/api/search", params=QUERY) for _ in range(20)))
                    status = (await client.get(f"/api/jobs/{job['id']}")).json()
                    during += [(response, status["status"]) for response in wave]
                    if status["status"] not in ("queued", "running"):
                        break
                after = (await client.get("/api/search", params=QUERY)).json()["results"]
                stats = (await client.get("/api/stats")).json()
                everything = (await client.get("/api/search", params={"q": "x", "k": 100})).json()["results"]
                return before, status, during, after, stats, everything

    before, status, during, after, stats, everything = asyncio.run(scenario())
    assert status["status"] == "done" and status["summary"]["added"] == 48
    assert len(during) >= 20
    codes = {response.status_code for response, _ in during}
    assert codes <= {200, 503}, codes
    assert any(response.status_code == 200 for response, _ in during)
    for response, _ in during:
        if response.status_code == 503:
            assert response.headers["retry-after"] == "1" and response.json()["detail"]
            continue
        results = response.json()["results"]
        assert results in (before, after)  # one whole ranking or the other
    assert stats["images"] == len(everything) == 10 + 48
    assert any(job_status == "running" for _, job_status in during)  # the searches overlapped the job
    assert {hit["path"] for hit in everything} >= {str(p) for p in new_folder.glob("*.png")}


def test_the_server_sees_what_another_process_committed_without_a_restart(tmp_path, tiny_dirs):
    """Another process indexes into the served index: one run that finishes, one killed
    after its second batch (nothing published, its snapshot never saved), and one that
    finishes its work. The server answers from what each published, with no restart and no
    5xx: the killed run's batches show when the next run publishes them."""
    import subprocess
    import sys
    from pathlib import Path

    from fastapi.testclient import TestClient

    from cli.main import main
    from search.config import load_settings

    index, model = tmp_path / "index", str(tiny_dirs["opt"])
    write_corpus(tmp_path / "first", 6, seed=41)
    assert main(["index", str(tmp_path / "first"), "--index", str(index), "--model", model, "--workers", "0",
                 "--json"]) == 0
    settings = load_settings(index=index, model=model, workers=0, device="cpu")
    with TestClient(create_app(settings)) as client:
        def everything() -> int:
            response = client.get("/api/search", params={"q": "x", "k": 100})
            assert response.status_code == 200, response.text
            return len(response.json()["results"])

        def eventually(count: int) -> int:
            """A request starts the catch-up in the background and is answered from the view
            it has; the next ones see the catalog's once it is done."""
            deadline = time.monotonic() + 60
            while (seen := everything()) != count and time.monotonic() < deadline:
                time.sleep(0.05)
            return seen

        assert everything() == 6
        write_corpus(tmp_path / "second", 5, seed=42)
        assert main(["index", str(tmp_path / "second"), "--index", str(index), "--model", model,
                     "--workers", "0", "--json"]) == 0
        assert everything() in (6, 11)  # the last consistent view, or the new one: never a part
        assert eventually(11) == 11
        write_corpus(tmp_path / "third", 12, seed=43)
        harness = Path(__file__).parent / "support" / "crash_harness.py"
        killed = subprocess.run([sys.executable, str(harness), "after-commit", "2", "--", "index",
                                 str(tmp_path / "third"), "--index", str(index), "--model", model,
                                 "--workers", "0", "--batch-size", "4", "--json"],
                                capture_output=True, timeout=300)
        assert killed.returncode == -9, killed.stderr
        assert everything() == 11 and client.get("/api/images/19").status_code == 404  # unpublished
        assert main(["index", str(tmp_path / "third"), "--index", str(index), "--model", model,
                     "--workers", "0", "--json"]) == 0
        assert eventually(11 + 12) == 11 + 12  # the killed run's two batches, and the rest
        similar = client.get("/api/images/19/similar", params={"k": 3})  # an image of the killed run
        assert similar.status_code == 200 and len(similar.json()["results"]) == 3
        stats = client.get("/api/stats").json()
        assert stats["images"] == 23 and stats["vectors"] == 23 * stats["queries_per_image"]


def test_searches_that_wait_together_are_served_in_one_batch(served_index):
    """Thirteen queries arrive while the model worker is busy: it serves them with one call,
    and each gets the hits it gets alone, or its own error."""
    queries = [f"a {colour} {shape}" for colour in ("red", "green", "blue") for shape in ("circle", "square")]
    queries += [f"{q} on grey" for q in queries]
    app = create_app(served_index["settings"].model_copy(update={"queue_size": 32}))

    async def scenario():
        async with app.router.lifespan_context(app):
            state = app.state.blip2
            calls = []
            search_many = state.searcher.search_many

            def counted(requests):
                calls.append(len(requests))
                return search_many(requests)

            state.searcher.search_many = counted
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
                gate = threading.Event()
                busy = asyncio.ensure_future(state.runner.run(gate.wait, 60))
                waiting = [asyncio.ensure_future(client.get("/api/search", params={"q": q, "k": 5}))
                           for q in [*queries, "   "]]
                for _ in range(600):
                    if state.runner.waiting == 1 + len(waiting):
                        break
                    await asyncio.sleep(0.05)
                gate.set()
                await busy
                together = await asyncio.gather(*waiting)
                alone = [(await client.get("/api/search", params={"q": q, "k": 5})).json() for q in queries]
            return together, alone, calls

    together, alone, calls = asyncio.run(scenario())
    assert calls[0] == len(queries) + 1  # all that waited, in one call
    assert [response.status_code for response in together] == [200] * len(queries) + [422]
    assert "empty" in together[-1].json()["detail"]  # the bad one's own error, the others unharmed
    for response, single in zip(together, alone, strict=False):
        got, want = response.json()["results"], single["results"]
        assert got and [hit["id"] for hit in got] == [hit["id"] for hit in want]
        assert [hit["score"] for hit in got] == pytest.approx([hit["score"] for hit in want], abs=1e-5)


def test_a_where_heavy_request_takes_turns_with_plain_searches(served_index):
    """A search with eight where conditions asks the decoder a few hits at a time, each call
    queued among the other requests': plain searches sent meanwhile are answered before it
    has finished asking (before, it held the model for all of its calls). Its bound is a 422."""
    app = create_app(served_index["settings"])
    asked: list[float] = []
    answered: list[float] = []
    heavy = {"q": "a shape", "k": 10, "candidates": 10,
             "where": [f"is shape {i} there?=yes" for i in range(8)]}

    async def scenario():
        async with app.router.lifespan_context(app):
            engine = app.state.blip2.engine
            ask_each = engine.ask_each

            def slow_ask_each(*args, **kwargs):  # each call long enough for a search to arrive
                asked.append(time.perf_counter())
                time.sleep(0.05)
                return ask_each(*args, **kwargs)

            engine.ask_each = slow_ask_each
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=120) as client:
                await client.get("/api/search", params=QUERY)  # the text side loaded
                where = asyncio.create_task(client.get("/api/search", params=heavy))
                while not asked:
                    await asyncio.sleep(0.01)
                for _ in range(3):
                    response = await client.get("/api/search", params=QUERY)
                    assert response.status_code == 200
                    answered.append(time.perf_counter())
                done = await where
                too_much = await client.get("/api/search", params={**heavy, "candidates": 201})
                return done, too_much

    done, too_much = asyncio.run(scenario())
    assert done.status_code == 200 and done.json()["where"]["asked"] == 10
    assert len(asked) == 16  # 10 hits, 8 at a time: 2 calls a condition
    assert answered[-1] < asked[-1]  # the plain searches were served between its calls
    assert too_much.status_code == 422 and "at most 1,600 times" in too_much.json()["detail"]
