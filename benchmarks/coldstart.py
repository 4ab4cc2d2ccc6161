"""Cold starts and memory at real size, measured as a user meets them.

The real-size random pair is written to disk as the hub lays it out (`realsize.write`:
float16 safetensors, 9.4 GB), and every command runs in a fresh process of its own, timed
from its start to its exit, its peak resident memory read from the kernel when it ends
(`ru_maxrss`). The same commands on the demo model, in the same run, are the floor that
Python, torch and transformers set. Measured:

- `index` of a few pictures at the CPU defaults, with an empty int8 cache (the first run);
- a cold text search, alternated with the same on the demo model (medians of three);
- a similar by id, alternated with `stats` (medians of three);
- the seconds until a fresh `serve` answers a text search, and its peak memory by then;
- the int8 stages built in a fresh process with an empty cache, then again from the cache;
- similar by id and text queries at 10,000 and 20,000 images (the top of the exact index
  kind), on synthetic vectors in the real catalog and vector index (`query`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from demo.shapes import write_collection
from search.presets import DEMO_FOLDER

from . import query, realsize

ROOT = Path(__file__).resolve().parent.parent
QUERY = "a red circle"
LOAD_INT8 = """
import json, sys, time
from pathlib import Path
from search import runtime
from search.models import Blip2Engine
runtime.configure()
engine = Blip2Engine.load(sys.argv[1], device="cpu", cache=Path(sys.argv[2]))
plan = engine.precision
stages = [name for name, int8 in (("encoder", plan.encoder_int8 or plan.encoder_weights_int8),
                                  ("language_model", plan.decoder_int8)) if int8]
started = time.perf_counter()
engine.prepare(stages)
print(json.dumps({"s": round(time.perf_counter() - started, 2), "stages": stages, "plan": plan.describe()}))
"""


def run(quick: bool, scratch: Path, pair: Path | None = None, rounds: int = 3, log=print) -> dict:
    """`pair`: a folder holding the real-size pair (written there when it is not yet). Quick:
    the demo model stands in for it (a smoke test of the measurements, not of the size)."""
    if quick:
        pair, rounds = DEMO_FOLDER, 1
    pair = pair or ensure_pair(scratch / "pair-realsize", realsize.Depth(), log)
    photos = scratch / "photos"
    write_collection(photos, seed=3, count=4 if quick else 12)
    real, demo = scratch / "index-real", scratch / "index-demo"
    for folder in (real, demo, scratch / "cache-index", scratch / "cache-loads"):
        shutil.rmtree(folder, ignore_errors=True)
    env = {"BLIP2_SEARCH_CACHE": str(scratch / "cache-index")}
    out: dict = {"pair_gb": round(_size(pair) / 1e9, 2)}
    out |= _index(photos, real, pair, env, log)
    command(["index", str(photos), "--index", str(demo), "--model", "demo", "--json"], env)
    out |= _cold(real, demo, env, rounds)
    served = serve_ready(real, env)
    out |= {"serve_text_ready_s_realsize": served["ready_s"],
            "serve_peak_gb_after_text_search": served["peak_gb"],
            "serve_parts_after_text_search": served["parts"]}
    log(f"cold starts: {out}")
    out |= _int8_loads(pair, scratch / "cache-loads", log)
    return out | small_collections(quick, scratch, log)


def _index(photos: Path, index: Path, pair: Path, env: dict, log) -> dict:
    """The first index run at the CPU defaults (its int8 cache empty)."""
    ran = command(["index", str(photos), "--index", str(index), "--model", str(pair), "--json"], env)
    log(f"index at real size: {ran['s']} s, peak {ran['peak_gb']} GB")
    return {"index_peak_gb_realsize_default": ran["peak_gb"], "index_s_realsize_default": ran["s"],
            "index_images_realsize": json.loads(ran["stdout"])["added"]}


def _cold(real: Path, demo: Path, env: dict, rounds: int) -> dict:
    search = _alternated(["search", QUERY, "-k", "3", "--json"], real, demo, env, rounds)
    similar = _alternated(["similar", "--id", "2", "-k", "3", "--json"], real, real, env, rounds,
                          other=["stats", "--json"])
    return {"cli_search_cold_s_realsize": search["first_s"], "cli_search_cold_s_demo": search["second_s"],
            "cli_search_cold_ratio_demo": round(search["first_s"] / search["second_s"], 2),
            "cli_search_peak_gb_realsize": search["first_peak_gb"],
            "cli_similar_cold_s_realsize": similar["first_s"],
            "cli_stats_cold_s_realsize": similar["second_s"],
            "cli_similar_cold_ratio_stats": round(similar["first_s"] / similar["second_s"], 2),
            "cli_similar_peak_gb_realsize": similar["first_peak_gb"]}


def _int8_loads(pair: Path, cache: Path, log) -> dict:
    """The int8 stages built in a fresh process with an empty cache, then from the cache."""
    first, cached = (_python(LOAD_INT8, [str(pair), str(cache)]) for _ in range(2))
    log(f"int8 loads: first {first}, cached {cached}")
    return {"int8_first_load_s_realsize": first["s"], "int8_cached_load_s_realsize": cached["s"],
            "int8_first_load_peak_gb": first["peak_gb"], "int8_cached_load_peak_gb": cached["peak_gb"],
            "int8_stages": first["stages"], "int8_cache_gb": round(_size(cache) / 1e9, 2),
            "default_precision": first["plan"]}


def small_collections(quick: bool, scratch: Path, log) -> dict:
    """Similar by id and text queries at 10,000 and 20,000 images (2,000 quick), uniform and
    clustered vectors: each figure the worse of the two kinds."""
    from .run import _text_engine

    sizes = [2_000] if quick else [10_000, 20_000]
    rows = query.run(sizes, _text_engine(quick), queries=32, dim=256, probes=20 if quick else 100,
                     scratch=scratch, log=log, modes=("auto",))
    out = {}
    for size in sizes:
        auto = [row for row in rows if row["images"] == size and row["mode"] == "auto"]
        label = f"{size // 1000}k"
        out |= {f"similar_p50_ms_{label}": max(row["similar_p50_ms"] for row in auto),
                f"similar_recall_at_10_{label}": min(row["similar_recall_at_10"] for row in auto),
                f"query_p50_ms_{label}": max(row["query_p50_ms"] for row in auto),
                f"recall_at_10_{label}": min(row["recall_at_10"] for row in auto),
                f"vector_index_{label}": auto[0]["index"]}
    return out


def ensure_pair(folder: Path, depth: realsize.Depth, log) -> Path:
    marker = folder / "written.json"
    if not (marker.is_file() and json.loads(marker.read_text()) == depth.__dict__):
        shutil.rmtree(folder, ignore_errors=True)
        started = time.perf_counter()
        realsize.write(folder, depth)
        marker.write_text(json.dumps(depth.__dict__))
        log(f"real-size pair written to {folder} in {time.perf_counter() - started:.0f} s")
    return folder


def command(argv: list[str], env: dict) -> dict:
    """`blip2-search argv` in a fresh process: its seconds, peak memory and output."""
    return _measured([sys.executable, "-m", "cli.main", *argv], env)


def serve_ready(index: Path, env: dict, port: int = 8771) -> dict:
    """Seconds from starting `serve` until it answers a text search; its peak memory then."""
    started = time.perf_counter()
    argv = [sys.executable, "-m", "cli.main", "serve", "--index", str(index), "--port", str(port)]
    process, report = _launch(argv, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/search?q=a+red+circle&k=3", timeout=5) as response:
                json.loads(response.read())
            break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("the server stopped before it answered") from None
            time.sleep(0.1)
    ready = time.perf_counter() - started
    with urllib.request.urlopen(f"{url}/api/stats", timeout=5) as response:
        parts = json.loads(response.read())["model_parts"]
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    peak = json.loads(report.read_text())["peak"]
    report.unlink()
    return {"ready_s": round(ready, 2), "peak_gb": _gb(peak), "parts": parts}


def _alternated(argv, first: Path, second: Path, env: dict, rounds: int,
                other: list[str] | None = None) -> dict:
    """`argv` on index `first` and `other or argv` on `second`, in turn, `rounds` times each:
    their median seconds, and the first's largest peak."""
    mine, theirs = [], []
    for _ in range(rounds):
        mine.append(command([*argv, "--index", str(first)], env))
        theirs.append(command([*(other or argv), "--index", str(second)], env))
    return {"first_s": statistics.median(r["s"] for r in mine),
            "second_s": statistics.median(r["s"] for r in theirs),
            "first_peak_gb": max(r["peak_gb"] for r in mine)}


def _python(code: str, args: list[str]) -> dict:
    ran = _measured([sys.executable, "-c", code, *args], {})
    return json.loads(ran["stdout"].strip().splitlines()[-1]) | {"peak_gb": ran["peak_gb"]}


def _measured(argv: list[str], env: dict) -> dict:
    """Run `argv` to its end: its seconds, its peak resident memory and its output."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process, report = _launch(argv, env, stdout=out, stderr=err)
        process.wait()
        found = json.loads(report.read_text())
        report.unlink()
        out.seek(0), err.seek(0)
        if found["code"]:
            raise RuntimeError(f"{' '.join(argv[2:5])} failed: {err.read().strip()[-500:]}")
        return {"s": found["s"], "peak_gb": _gb(found["peak"]), "stdout": out.read()}


# A process's peak memory as the kernel counts it includes what it held before its exec: a
# child forked from this process (a few hundred MB, torch loaded) would count this process's
# pages. So each command runs under a small launcher, which reports its own child's figures.
LAUNCHER = """
import json, os, signal, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
for name in (signal.SIGINT, signal.SIGTERM):
    signal.signal(name, lambda number, frame: child.send_signal(number))
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as report:
    code = os.waitstatus_to_exitcode(status)
    json.dump({"code": code, "peak": usage.ru_maxrss * 1024, "s": round(seconds, 2)}, report)
"""


def _launch(argv: list[str], env: dict, **streams) -> tuple[subprocess.Popen, Path]:
    """`argv` started under the launcher; the path its report will be written to."""
    handle, name = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    process = subprocess.Popen([sys.executable, "-c", LAUNCHER, name, *argv], cwd=ROOT,
                               env={**os.environ, **env}, **streams)
    return process, Path(name)


def _size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _gb(size: int) -> float:
    return round(size / 1e9, 2)
