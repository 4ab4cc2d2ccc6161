"""The model runner: requests wait their turn, and an index job's batches wait with them,
counted, so that a search never waits behind work the runner cannot see."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from api.app import create_app
from api.runner import ModelRunner, Saturated
from tests.support.corpus import write_corpus


def _until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_a_job_batch_takes_its_turn_and_counts_among_the_waiting():
    runner, gate, done = ModelRunner(queue_size=2), threading.Event(), []

    async def scenario():
        busy = asyncio.ensure_future(runner.run(gate.wait, 30))  # a request the worker is on
        await asyncio.to_thread(_until, lambda: runner.waiting == 1)
        job = threading.Thread(target=lambda: done.append(runner.turn(lambda: "embedded")))
        job.start()  # an index job's batch, from its own thread
        await asyncio.to_thread(_until, lambda: runner.waiting == 2)
        with pytest.raises(Saturated):  # the queue holds the job's batch: a third is refused
            await runner.run(lambda: None)
        assert done == []  # behind the request, in its turn
        gate.set()
        await busy
        await asyncio.to_thread(job.join, 30)
        return await runner.run(lambda: "served")

    assert asyncio.run(scenario()) == "served"
    assert done == ["embedded"] and runner.waiting == 0
    runner.shutdown()


def test_an_index_job_through_the_api_waits_on_the_model_worker(own_index, tmp_path):
    """While the model worker is busy, a started job's first batch is counted as waiting
    (the server's 503 accounting sees it) and runs only once the worker is free."""
    write_corpus(tmp_path / "new", 3, seed=31)
    app = create_app(own_index["settings"].model_copy(update={"queue_size": 8}))

    async def scenario():
        async with app.router.lifespan_context(app):
            state = app.state.blip2
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
                gate = threading.Event()
                busy = asyncio.ensure_future(state.runner.run(gate.wait, 60))
                await asyncio.to_thread(_until, lambda: state.runner.waiting == 1)
                job = (await client.post("/api/index", json={"paths": [str(tmp_path / "new")]})).json()
                await asyncio.to_thread(_until, lambda: state.runner.waiting == 2)  # its batch, counted
                held = (await client.get(f"/api/jobs/{job['id']}")).json()
                gate.set()
                await busy
                while (status := (await client.get(f"/api/jobs/{job['id']}")).json())["status"] == "running":
                    await asyncio.sleep(0.05)
                return held, status

    held, status = asyncio.run(scenario())
    assert held["status"] == "running" and held["done"] == 0  # no batch committed while the worker was busy
    assert status["status"] == "done" and status["summary"]["added"] == 3
