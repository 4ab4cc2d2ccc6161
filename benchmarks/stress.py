"""The stress runs of the robustness work: `python -m benchmarks.stress [--only NAME ...]`.

- `photos`: 40 photos of 24 megapixels (6000 x 4000 JPEG) indexed at the default settings
  with the demo model; the peak resident memory of the indexing process and its decoding
  workers together, sampled every 50 ms.
- `phone`: one 108-megapixel JPEG (12000 x 9000) indexed.
- `writers`: two index runs on one index, three times with different source folders and
  three times with the same one; every file once, images x Q == vectors.
- `server`: an API index job polled with similar and text searches on new and old images
  throughout, against the real server under uvicorn; every status counted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from demo.shapes import write_collection

PARTS = ("photos", "phone", "writers", "server")


def _cli(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cli.main", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and its descendants."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(child) for child in children.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def _photo(path: Path, size: tuple[int, int], seed: int) -> None:
    """A smooth picture with grain, saved as a camera would (JPEG, quality 90)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 500 + 2, size[0] // 500 + 2, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    grain = Image.effect_noise(size, 12).convert("RGB")
    Image.blend(image, grain, 0.08).save(path, quality=90)


def photos(scratch: Path) -> dict:
    folder = scratch / "photos"
    folder.mkdir()
    for i in range(40):
        _photo(folder / f"photo{i:02d}.jpg", (6000, 4000), i)
    process = _cli("index", str(folder), "--index", str(scratch / "photos-index"), "--model", "demo",
                   "--json")
    peak, started = 0, time.perf_counter()
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.05)
    out, err = process.communicate()
    summary = json.loads(out) if process.returncode == 0 else {"error": err}
    return {"photos": 40, "megapixels": 24, "peak_rss_gb": round(peak / 2**30, 2),
            "seconds": round(time.perf_counter() - started, 1), "added": summary.get("added"),
            "failed": summary.get("failed"), "exit": process.returncode}


def phone(scratch: Path) -> dict:
    folder = scratch / "phone"
    folder.mkdir()
    _photo(folder / "phone.jpg", (12000, 9000), 7)
    process = _cli("index", str(folder), "--index", str(scratch / "phone-index"), "--model", "demo", "--json")
    out, err = process.communicate()
    summary = json.loads(out) if process.returncode == 0 else {"error": err}
    shown = _cli("image", "1", "--index", str(scratch / "phone-index"), "--json").communicate()[0]
    return {"megapixels": 108, "file_mb": round((folder / "phone.jpg").stat().st_size / 1e6, 1),
            "added": summary.get("added"), "failed": summary.get("failed"),
            "image": json.loads(shown or "{}")}


def writers(scratch: Path) -> list[dict]:
    rows = []
    for trial in range(6):
        same = trial >= 3
        root = scratch / f"writers{trial}"
        write_collection(root / "a", seed=100 + trial, count=60)
        write_collection(root / "b", seed=200 + trial, count=60)
        index = root / "index"
        runs = [_cli("index", str(root / "a"), "--index", str(index), "--model", "demo", "--json"),
                _cli("index", str(root / ("a" if same else "b")), "--index", str(index), "--model", "demo",
                     "--json")]
        summaries = [json.loads(run.communicate()[0]) for run in runs]
        stats = json.loads(_cli("stats", "--index", str(index), "--json").communicate()[0])
        files = sorted(str(p) for folder in (["a"] if same else ["a", "b"])
                       for p in (root / folder).iterdir() if p.suffix in (".png", ".jpg"))
        rows.append({"same_folder": same, "added": [s["added"] for s in summaries],
                     "unchanged": [s["unchanged"] for s in summaries], "files": len(files),
                     "images": stats["images"], "vectors": stats["vectors"],
                     "consistent": stats["images"] * stats["queries_per_image"] == stats["vectors"]})
    return rows


def server(scratch: Path) -> dict:
    old, new, index = scratch / "server" / "old", scratch / "server" / "new", scratch / "server-index"
    write_collection(old, seed=300, count=60)
    write_collection(new, seed=301, count=200)
    _cli("index", str(old), "--index", str(index), "--model", "demo", "--json").communicate()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    served = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--index", str(index),
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    statuses: dict[int, int] = {}
    try:
        _wait(url)
        job = _post(f"{url}/api/index", {"paths": [str(new)]})
        done = threading.Event()
        while not done.is_set():
            state = _get(f"{url}/api/jobs/{job['id']}")[1]
            newest = _get(f"{url}/api/stats")[1]["generation"]
            for target in (f"/api/search?q={urllib.parse.quote('a red circle')}&k=10",
                           "/api/images/3/similar?k=5", f"/api/images/{61 + newest % 150}/similar?k=5",
                           f"/api/images/{61 + newest % 150}"):
                code, _ = _get(url + target)
                statuses[code] = statuses.get(code, 0) + 1
            if state["status"] not in ("queued", "running"):
                done.set()
        stats = _get(f"{url}/api/stats")[1]
        everything = _get(f"{url}/api/search?q=x&k=100")[1]["results"]
    finally:
        served.terminate()
        served.wait(timeout=30)
    return {"job": state["status"], "summary": state["summary"], "responses": statuses,
            "server_errors": sum(n for code, n in statuses.items() if code >= 500),
            "images_after": stats["images"], "searchable_after": len(everything)}


def _wait(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def main(argv: list[str] | None = None) -> int:
    return run_parts("python -m benchmarks.stress", __doc__, {name: globals()[name] for name in PARTS}, argv)


def run_parts(prog: str, doc: str, parts: dict, argv: list[str] | None) -> int:
    """Run the `--only` parts (default: all), each given a scratch folder; print the report."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(parts))
    args = parser.parse_args(argv)
    report = {"cpu": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="stress-") as scratch:
        for name in args.only or parts:
            started = time.perf_counter()
            report[name] = parts[name](Path(scratch))
            report[f"{name}_seconds"] = round(time.perf_counter() - started)
            print(json.dumps({name: report[name]}), file=sys.stderr, flush=True)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
