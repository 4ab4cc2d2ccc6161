"""API keys, upload limits, saturation, CORS, and files served only by id inside their root."""

from __future__ import annotations

import asyncio
import os
import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from search.records import Selection

KEY = "s3cret-key"


def _app(served_index, **overrides):
    return create_app(served_index["settings"].model_copy(update=overrides))


def test_write_endpoints_need_the_key(own_index):
    with TestClient(_app(own_index, api_key=KEY)) as client:
        body = {"paths": [str(own_index["root"] / "photos")]}
        assert client.post("/api/index", json=body).status_code == 401
        assert client.post("/api/index", json=body, headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.post("/api/index", json=body, headers={"X-API-Key": KEY}).status_code == 202
        scan = {"path": body["paths"][0]}
        assert client.post("/api/index/scan", params=scan).status_code == 401
        assert client.post("/api/index/scan", params=scan, headers={"X-API-Key": KEY}).status_code == 202
        assert client.get("/api/search", params={"q": "x"}).status_code == 200  # reads stay open
        assert client.get("/api/stats").status_code == 200


def test_protected_reads(served_index):
    with TestClient(_app(served_index, api_key=KEY, protect_reads=True)) as client:
        assert client.get("/api/search", params={"q": "x"}).status_code == 401
        assert client.get("/api/images/1").status_code == 401
        assert client.get("/api/search", params={"q": "x"}, headers={"X-API-Key": KEY}).status_code == 200
        assert client.get("/healthz").status_code == 200
        client.cookies.set("blip2_search_key", "wrong")
        assert client.get("/api/images/1/thumbnail").status_code == 401
        client.cookies.set("blip2_search_key", KEY)  # what the web page sets when it asks for the key
        assert client.get("/api/images/1/thumbnail").status_code == 200
        assert client.get("/api/search", params={"q": "x"}).status_code == 200
        assert client.post("/api/index", json={"paths": ["/x"]}).status_code == 401  # writes: the header only


def test_protected_reads_without_a_key_are_refused_not_ignored(served_index, monkeypatch):
    from search.config import load_settings
    from search.errors import ConfigError

    monkeypatch.setenv("BLIP2_SEARCH_PROTECT_READS", "1")
    monkeypatch.delenv("BLIP2_SEARCH_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="PROTECT_READS needs BLIP2_SEARCH_API_KEY"):
        load_settings(index=served_index["settings"].index)


def test_uploads_over_the_limit_get_413(served_index):
    with TestClient(_app(served_index, max_upload_mb=0.01)) as client:  # about 10 KB
        big = b"\x89PNG" + os.urandom(40_000)
        declared = client.post("/api/search/image", files={"file": ("big.png", big, "image/png")})
        assert declared.status_code == 413 and "larger than" in declared.json()["detail"]

        def chunks():  # no Content-Length: the body arrives chunked
            for _ in range(10):
                yield os.urandom(4096)

        streamed = client.post("/api/search/image", content=chunks(),
                               headers={"content-type": "multipart/form-data; boundary=x"})
        assert streamed.status_code == 413
        assert "content-length" not in {k.lower() for k in streamed.request.headers}
        small = client.post("/api/search/image", files={"file": ("x.png", b"tiny", "image/png")})
        assert small.status_code == 422  # under the limit, read, and refused as not an image


def test_saturated_queue_gives_503_and_health_stays_fast(served_index):
    app = _app(served_index, queue_size=1)

    async def scenario():
        async with app.router.lifespan_context(app):
            gate = threading.Event()
            blocker = asyncio.ensure_future(app.state.blip2.runner.run(gate.wait))  # the model is busy
            await asyncio.sleep(0.05)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                busy = await client.get("/api/search", params={"q": "x"})
                ask = await client.post("/api/images/2/ask", json={"question": "what?"})
                health = await asyncio.wait_for(client.get("/healthz"), timeout=2)
                gate.set()
                await blocker
                after = await client.get("/api/search", params={"q": "x"})
            return busy, ask, health, after

    busy, ask, health, after = asyncio.run(scenario())
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert ask.status_code == 503
    assert health.status_code == 200
    assert after.status_code == 200


def test_cors_origins_are_configurable(served_index):
    with TestClient(_app(served_index, cors_origins=["http://allowed.example"])) as client:
        ok = client.get("/api/stats", headers={"Origin": "http://allowed.example"})
        assert ok.headers["access-control-allow-origin"] == "http://allowed.example"
        other = client.get("/api/stats", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_files_only_by_id_and_inside_the_root(own_index, tmp_path):
    from search.collection import Collection

    with TestClient(_app(own_index)) as client:
        collection = Collection.open(own_index["settings"].index)
        ids = collection.catalog.listing.ids(Selection()).tolist()
        record = collection.catalog.get(ids[-1])
        collection.close()
        assert client.get(f"/api/images/{record.id}/file").status_code == 200
        secret = tmp_path / "secret.txt"
        secret.write_text("outside the indexed folder")
        original = record.path + ".orig"
        os.rename(record.path, original)
        os.symlink(secret, record.path)  # the indexed file is now a link pointing outside
        refused = client.get(f"/api/images/{record.id}/file")
        assert refused.status_code == 403
        assert b"outside the indexed folder" not in refused.content
        for url in ("/api/images/..%2F..%2Fetc%2Fpasswd/file", "/api/images/../../etc/passwd",
                    "/static/..%2F..%2Fsearch%2Fconfig.py", "/api/images/1/file?path=/etc/passwd"):
            response = client.get(url)
            assert response.status_code in (200, 404, 422), url
            assert b"root:" not in response.content and b"BaseSettings" not in response.content


def test_a_hard_link_put_in_an_indexed_files_place_is_not_served(own_index, tmp_path):
    """A hard link resolves inside the folder, so only the file's own identity tells it from
    the picture indexed there: a file whose size and time are not those indexed is refused."""
    from search.collection import Collection

    collection = Collection.open(own_index["settings"].index)
    record = collection.catalog.get(collection.catalog.listing.ids(Selection()).tolist()[0])
    collection.close()
    secret = own_index["root"] / "secret.txt"  # on the same file system, as a hard link needs
    secret.write_text("a secret beside the photos")
    with TestClient(_app(own_index)) as client:
        first = client.get(f"/api/images/{record.id}/file")
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
        os.rename(record.path, record.path + ".orig")
        os.link(secret, record.path)
        refused = client.get(f"/api/images/{record.id}/file")
        assert refused.status_code == 403 and "index it again" in refused.json()["detail"]
        assert b"secret" not in refused.content


def test_thumbnails_are_asked_again_each_time(own_index):
    """A deleted image's id may be given to a new image (SQLite reuses the highest), so a
    thumbnail is never kept by id: the page asks again, a 304 while it is the same."""
    with TestClient(_app(own_index)) as client:
        first = client.get("/api/images/2/thumbnail")
        assert first.status_code == 200 and first.headers["cache-control"] == "no-cache"
        again = client.get("/api/images/2/thumbnail", headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304


def test_beyond_loopback_writes_need_a_key(own_index):
    body = {"paths": [str(own_index["root"] / "photos")]}
    with TestClient(_app(own_index, host="0.0.0.0")) as client:
        refused = client.post("/api/index", json=body)
        assert refused.status_code == 403 and "BLIP2_SEARCH_API_KEY" in refused.json()["detail"]
        assert client.get("/api/search", params={"q": "x"}).status_code == 200  # reads stay open
    with TestClient(_app(own_index, host="0.0.0.0", api_key=KEY)) as client:
        assert client.post("/api/index", json=body).status_code == 401
        assert client.post("/api/index", json=body, headers={"X-API-Key": KEY}).status_code == 202
    for host, alone in (("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
                        ("::", False), ("192.0.2.7", False), ("photos.example", False)):
        assert own_index["settings"].model_copy(update={"host": host}).loopback_only == alone, host


def test_a_failed_file_is_never_served(tmp_path, served_index):
    from cli.main import main
    from tests.support.corpus import write_corpus

    write_corpus(tmp_path / "photos", 2)
    (tmp_path / "photos" / "creds.png").write_text("password: hunter2")
    index = tmp_path / "index"
    assert main(["index", str(tmp_path / "photos"), "--index", str(index), "--model",
                 served_index["settings"].model, "--workers", "0", "--json"]) == 0
    settings = served_index["settings"].model_copy(update={"index": index})
    with TestClient(create_app(settings)) as client:
        statuses = {image: client.get(f"/api/images/{image}").json()["status"] for image in range(1, 4)}
        failed = [image for image, status in statuses.items() if status == "failed"]
        assert len(failed) == 1
        response = client.get(f"/api/images/{failed[0]}/file")
        assert response.status_code == 404 and b"hunter2" not in response.content


def test_damaged_or_missing_thumbnails_are_made_again_not_served(own_index):
    import io

    from PIL import Image

    from search.collection import Collection

    collection = Collection.open(own_index["settings"].index)
    record = collection.catalog.get(3)
    path = collection.thumbnails.path(record.content_hash)
    collection.close()
    whole = path.read_bytes()
    with TestClient(_app(own_index)) as client:
        for damage in (lambda: path.write_bytes(whole[:40]), path.unlink):
            damage()
            response = client.get("/api/images/3/thumbnail")
            assert response.status_code == 200
            assert Image.open(io.BytesIO(response.content)).size == (32, 32)  # decodes whole
            assert path.read_bytes() == response.content
