"""Text searches a second through the real server, with a real HTTP load tool.

The collection is one the query part built (synthetic vectors); the server is `blip2-search
serve` under uvicorn, in its own process, with a model folder holding the real-size text
side (a 12-layer Q-Former; the image encoder and language model, which a text query never
runs, cut to one layer) saved from `realsize`. `hey` (Debian) sends the requests from
`clients` connections at once; its own report gives the rate, the latency percentiles and
every status code.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from search.catalog import Catalog, database_url

from . import realsize

QUERY = "a dog running on the beach at sunset"


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
    url = f"http://127.0.0.1:{port}/api/search?" + urllib.parse.urlencode({"q": QUERY, "k": 10})
    try:
        _wait(url, server, log_file)
        subprocess.run([hey, "-n", str(4 * clients), "-c", str(clients), url], check=True,
                       capture_output=True)  # warm-up
        report = subprocess.run([hey, "-n", str(requests), "-c", str(clients), url], check=True,
                                capture_output=True, text=True).stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
        log_file.close()
    result = parse(report) | {"clients": clients, "requests": requests}
    log(f"serving: {result}")
    return result


def parse(report: str) -> dict:
    """`hey`'s summary: rate, p50 and p99 in ms, and the responses that were not 200."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", report).group(1))
    latency = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)%+ in ([\d.]+) secs", report)}
    codes = {int(code): int(count) for code, count in re.findall(r"\[(\d+)\]\s+(\d+) responses", report)}
    errors = len(re.findall(r"^\s+\[\d+\]\s+Get ", report, flags=re.M))  # connection-level failures
    return {"searches_per_s": round(rate, 1), "p50_ms": round(latency[50], 1),
            "p99_ms": round(latency[99], 1), "status": codes,
            "non_200": sum(n for code, n in codes.items() if code != 200) + errors}


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
