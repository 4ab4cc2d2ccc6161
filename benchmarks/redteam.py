"""The stress runs of red-team round 3: `python -m benchmarks.redteam [--only NAME ...]`.

- `filters`: 70,003 catalog rows, broad `caption:` and `text:` filters (one, then nine at
  once) listed on SQLite and, where one runs (BLIP2_SEARCH_TEST_POSTGRES_URL), PostgreSQL.
- `uploads`: a 16-bit grey PNG of 196 megapixels (about 0.4 MB) and an RGBA PNG of 144
  sent to the real server's `/api/search/image`; its peak resident memory.
- `fairness`: 8 clients sending plain searches to the real server on the demo model, alone
  and then beside a client sending searches with 8 where conditions over 200 candidates;
  the plain searches' statuses, and the p50 and p99 of those answered (a 503 is retried
  after its Retry-After, as a client should).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
from PIL import Image

from demo.shapes import write_collection

from .stress import _cli, _get, _tree_rss, _wait, run_parts

PARTS = ("filters", "uploads", "fairness")
ROWS = 70_003


def filters(scratch: Path) -> dict:
    from search.records import ImageFile, Selection
    from search.store.catalog import Catalog

    urls = {"sqlite": f"sqlite:///{scratch / 'filters.db'}"}
    if given := os.environ.get("BLIP2_SEARCH_TEST_POSTGRES_URL"):
        urls["postgresql"] = _fresh_database(given)
    nine = Selection(caption=("triangle", "red", "a red triangle", "number", "red triangle"),
                     text=("open", "daily", "open daily", "OPEN"))
    asked = {"caption": Selection(caption=("triangle",)), "text": Selection(text=("open",)), "nine": nine}
    found = {}
    for backend, url in urls.items():
        catalog = Catalog.open(url)
        vectors = np.full((4, 8), 0.5, dtype=np.float16)
        for start in range(0, ROWS, 10_000):
            catalog.write([ImageFile(path=f"/r/{i}.png", size=1, mtime=1.0, root="/r", content_hash=str(i),
                                     caption=f"a red triangle number {i}", text=f"OPEN DAILY {i % 7}",
                                     vectors=vectors) for i in range(start, min(start + 10_000, ROWS))])
        for name, selection in asked.items():
            started = time.perf_counter()
            total, page = catalog.listing.page(selection, 0, 10)
            found[f"{backend}_{name}"] = {"matched": total, "page": len(page),
                                          "seconds": round(time.perf_counter() - started, 2)}
        catalog.close()
    return found


def _fresh_database(server: str) -> str:
    from sqlalchemy import create_engine, make_url, text

    name = f"redteam_{os.getpid()}"
    admin = create_engine(make_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def uploads(scratch: Path) -> dict:
    index = _demo_index(scratch, 20)
    pictures = {"grey16_196mp": ("I;16", 14_000, 40_000), "rgba_144mp": ("RGBA", 12_000, (10, 200, 30, 128))}
    found = {}
    with _served(index) as (url, process):
        found["server_before_gb"] = round(_tree_rss(process.pid) / 1e9, 2)
        for name, (mode, side, fill) in pictures.items():
            path = scratch / f"{name}.png"
            Image.new(mode, (side, side), fill).save(path, compress_level=9)
            sent = f"{url}/api/search/image?k=3"
            status, peak = _peak_during(process.pid, lambda path=path, sent=sent: _upload(sent, path))
            found[name] = {"file_mb": round(path.stat().st_size / 1e6, 2), "status": status,
                           "server_peak_gb": round(peak / 1e9, 2)}
    return found


def _peak_during(pid: int, work) -> tuple[object, int]:
    """`work()`'s result, and the most resident memory process `pid` held meanwhile."""
    peak, stop = [_tree_rss(pid)], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        return work(), peak[0]
    finally:
        stop.set()
        sampler.join()


def fairness(scratch: Path) -> dict:
    heavy = urllib.parse.urlencode({"q": "a shape", "k": 10, "candidates": 200,
                                    "where": [f"is there a shape number {i}?=yes" for i in range(8)]},
                                   doseq=True)
    with _served(_demo_index(scratch, 240)) as (url, _):
        return {"alone": _load(url, None), "beside_where": _load(url, heavy)}


def _load(url: str, heavy: str | None, clients: int = 8, seconds: float = 60.0) -> dict:
    """`clients` threads sending plain searches for `seconds` (beside one sending the `heavy`
    search, when given): the plain searches' statuses, p50 and p99, and the heavy ones'."""
    times, statuses, heavies, stop = [], {}, [], threading.Event()

    def plain(seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not stop.is_set():
            query = urllib.parse.quote(f"a {['red', 'blue', 'green'][rng.integers(3)]} circle")
            started = time.perf_counter()
            code, _ = _get(f"{url}/api/search?q={query}&k=10")
            if code == 200:
                times.append(time.perf_counter() - started)
            statuses[code] = statuses.get(code, 0) + 1
            if code == 503:  # as a client should: after its Retry-After
                time.sleep(1)

    def where() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            code, body = _get(f"{url}/api/search?{heavy}")
            heavies.append({"status": code, "seconds": round(time.perf_counter() - started, 1),
                            "asked": (body.get("where") or {}).get("asked")})
            if code == 503:
                time.sleep(1)

    threads = [threading.Thread(target=plain, args=(seed,)) for seed in range(clients)]
    threads += [threading.Thread(target=where)] if heavy else []
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return {"plain_searches": len(times), "statuses": statuses,
            "plain_p50_ms": round(float(np.percentile(times, 50)) * 1000, 1),
            "plain_p99_ms": round(float(np.percentile(times, 99)) * 1000, 1), "where_searches": heavies}


def _demo_index(scratch: Path, count: int) -> Path:
    photos, index = scratch / f"photos-{count}", scratch / f"index-{count}"
    if not index.exists():
        write_collection(photos, seed=4243, count=count)
        _cli("index", str(photos), "--index", str(index), "--model", "demo", "--keep-features",
             "--json").communicate()
    return index


class _served:
    """The real server (uvicorn, as `serve` runs it) over `index`, for a `with` block."""

    def __init__(self, index: Path) -> None:
        self.index = index

    def __enter__(self):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [sys.executable, "-m", "cli.main", "serve", "--index", str(self.index), "--port", str(port),
                   "--model", "demo"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        _wait(url)
        return url, self.process

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _upload(url: str, path: Path) -> int:
    import httpx

    with path.open("rb") as handle:
        return httpx.post(url, files={"file": (path.name, handle, "image/png")}, timeout=300).status_code


def main(argv: list[str] | None = None) -> int:
    return run_parts("python -m benchmarks.redteam", __doc__, {name: globals()[name] for name in PARTS}, argv)


if __name__ == "__main__":
    sys.exit(main())
