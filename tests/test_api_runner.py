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


def test_requests_in_turns_have_a_pool_of_their_own_and_plain_ones_pass_between_their_calls():
    """A where-heavy request (`in_turns`) takes no plain request's place: with it at work the
    plain queue still admits `queue_size`; a second heavy one beyond its pool gets the 503;
    and plain requests queued during one of its model calls run before its next call."""
    runner, order, gates = ModelRunner(queue_size=2, heavy_size=1), [], [threading.Event() for _ in range(3)]

    class Engine:
        def ask(self, turn: int) -> int:
            order.append(f"heavy {turn}")
            gates[turn].wait(30)
            return turn

    async def scenario():
        asks = lambda engine: [engine.ask(i) for i in range(3)]  # noqa: E731
        heavy = asyncio.ensure_future(runner.in_turns(asks, Engine()))
        await asyncio.to_thread(_until, lambda: order == ["heavy 0"])
        plain = [asyncio.ensure_future(runner.run(order.append, f"plain {i}")) for i in range(2)]
        await asyncio.to_thread(_until, lambda: runner.waiting == 2)  # both admitted beside the heavy one
        with pytest.raises(Saturated):
            await runner.in_turns(lambda engine: None, Engine())  # its pool holds one
        with pytest.raises(Saturated):
            await runner.run(lambda: None)  # the plain queue is full: two
        for gate in gates:
            gate.set()
        await asyncio.gather(*plain)
        return await heavy

    assert asyncio.run(scenario()) == [0, 1, 2]
    assert order == ["heavy 0", "plain 0", "plain 1", "heavy 1", "heavy 2"]
    runner.shutdown()
