"""Text searches a second through the real server, with a real HTTP load tool.

The collection is one the query part built (synthetic vectors); the server is `blip2-search
serve` under uvicorn, in its own process, with a model folder holding the real-size text
side (a 12-layer Q-Former; the image encoder and language model, which a text query never
runs, cut to one layer) saved from `realsize`. `hey` (Debian) sends the requests: one `hey`
a client, each with its own query (so that no two clients ask the same thing), all started
together; their per-request reports (CSV) give the latency percentiles and every status code,
and the rate is the requests over the wall time from the first start to the last finish.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from search.store.catalog import Catalog, database_url

from . import realsize

QUERIES = ("a dog running on the beach at sunset", "two cats asleep on a sofa", "a red car in the snow",
           "people at a street market", "mountains above a lake", "a birthday cake with candles",
           "a child riding a bicycle", "city lights at night", "a bowl of fruit on a table",
           "a sailing boat at sea", "an old church in a village", "a plate of pasta")


def save_text_model(folder: Path, qformer: int = 12) -> Path:
    """The real-size text side as a model folder (retrieval/ and generation/)."""
    pair = realsize.build(realsize.Depth(vision=1, qformer=qformer, language=1))
    for side, model, processor in (("retrieval", pair.retrieval, pair.retrieval_processor),
                                   ("generation", pair.generation, pair.generation_processor)):
        model.save_pretrained(folder / side)
        processor.save_pretrained(folder / side)
    return folder


def throughput(index: Path, model: Path, *, clients: int = 8, requests: int = 2000, log=print) -> dict:
    """Serve `index` with `model` and load it with `hey`; the index is re-bound to the model
    folder (it was built under another name)."""
    hey = shutil.which("hey")
    if hey is None:
        raise RuntimeError("the API throughput needs `hey` (apt-get install hey)")
    catalog = Catalog.open(database_url(index))
    catalog.set_meta(model=str(model.resolve()))
    catalog.close()
    port = _free_port()
    env = {**os.environ, "BLIP2_SEARCH_DTYPE": "auto", "BLIP2_SEARCH_QUEUE_SIZE": str(4 * clients)}
    log_file = tempfile.TemporaryFile("w+")
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--index", str(index), "--model",
                               str(model), "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=log_file, text=True)
    base = f"http://127.0.0.1:{port}/api/search?"
    urls = [base + urllib.parse.urlencode({"q": QUERIES[i % len(QUERIES)], "k": 10}) for i in range(clients)]
    try:
        _wait(urls[0], server, log_file)
        _load(hey, urls, 4)  # warm-up
        reports, seconds = _load(hey, urls, requests // clients)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log_file.close()
    sent = requests // clients * clients
    result = parse(reports, seconds, sent) | {"clients": clients, "requests": sent}
    log(f"serving: {result}")
    return result


def _load(hey: str, urls: list[str], each: int) -> tuple[list[str], float]:
    """One `hey` a URL, `each` requests one after another, all at once: their CSV reports and
    the wall time."""
    started = time.perf_counter()
    runs = [subprocess.Popen([hey, "-n", str(each), "-c", "1", "-o", "csv", url], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for url in urls]
    reports = [run.communicate()[0] for run in runs]
    seconds = time.perf_counter() - started
    if any(run.returncode for run in runs):
        raise RuntimeError(f"hey failed: {[run.returncode for run in runs]}")
    return reports, seconds


def parse(reports: list[str], seconds: float, sent: int) -> dict:
    """`hey`'s CSV reports (a line a response: seconds first, status code seventh): the rate,
    p50 and p99 in ms, and the responses that were not 200 (hey leaves out the requests that
    got no response at all, so those count as the ones missing)."""
    latency, codes = [], {}
    for report in reports:
        for line in report.splitlines()[1:]:
            fields = line.split(",")
            if len(fields) >= 7:
                latency.append(float(fields[0]) * 1000)
                codes[int(fields[6])] = codes.get(int(fields[6]), 0) + 1
    p50, p99 = np.percentile(latency, [50, 99]) if latency else (float("nan"), float("nan"))
    return {"searches_per_s": round(codes.get(200, 0) / seconds, 1), "p50_ms": round(float(p50), 1),
            "p99_ms": round(float(p99), 1), "status": codes,
            "non_200": sent - codes.get(200, 0)}


def _wait(url: str, server: subprocess.Popen, log_file, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=30).read()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                log_file.seek(0)
                raise RuntimeError(f"the server did not start: {log_file.read()[-2000:]}") from None
            time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
