"""20 parallel clients search while an index job runs: 200 or a documented 503, and each answer
is the ranking before the job or after it, never a mix."""

from __future__ import annotations

import asyncio

import httpx

from api.app import create_app

from .conftest import write_corpus

QUERY = {"q": "a blue square", "k": 10}


def test_parallel_searches_during_an_index_job(served_index, tmp_path):
    new_folder = tmp_path / "new"
    write_corpus(new_folder, 48, seed=21)
    app = create_app(served_index["settings"].model_copy(update={"queue_size": 8}))

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
    assert {hit["path"] for hit in everything} >= {str(p) for p in new_folder.iterdir()}
