"""The benchmark suite: `python -m benchmarks.run [--quick] [--out FILE] [--only NAME ...]`.

`make bench` runs it in full and writes benchmarks/results/latest.json, and a copy named for
the host's bucket (`machine.host_bucket`, e.g. host-amd-avx512-bf16.json: one full run kept
per bucket); `make bench-quick` runs one small iteration of every part (the same widths, fewer
layers, fewer images), says so in its output, and is what CI runs as a smoke test.

Every command but a quick one ends by merging its figures into
benchmarks/results/current.json, the newest measurement of each key with its run, date, host
and command, and rewriting BENCHMARKS.md's table from it (`benchmarks/results.py`), whether
or not `--out` is given. A quick run leaves both alone: its figures come from cut-down
models, and would replace real ones.
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from search import runtime
from search.models import precision

from . import (
    coldstart,
    dates,
    duplicates,
    features,
    hardware,
    indexing,
    large,
    ocr,
    query,
    realsize,
    results,
    serving,
)

PARTS = results.PARTS


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.scratch:  # made here, not found missing after an hour of other parts
        args.scratch.mkdir(parents=True, exist_ok=True)
    settings = runtime.configure()  # as the CLI and the server set up the process
    started = time.perf_counter()
    given = argv if argv is not None else sys.argv[1:]
    report: dict = {"quick": args.quick, "machine": hardware.machine() | settings,
                    "command": " ".join(["python -m benchmarks.run", *given])}
    _run_parts(report, args)
    report["seconds"] = round(time.perf_counter() - started)
    report["date"] = results.now()
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        if not args.quick and not args.only:  # one full run kept per host bucket
            (args.out.parent / f"host-{report['machine']['host_bucket']}.json").write_text(text + "\n")
    if results.record(report, run=str(args.out) if args.out else "printed only (no --out)"):
        _log(f"{results.CURRENT}: this run's figures merged where newer; BENCHMARKS.md's table from it")
    else:
        _log(f"a quick run is a smoke test: {results.CURRENT} is left as it was")
    print(text)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small iteration of every part "
                        "(a smoke test: current.json is not updated)")
    parser.add_argument("--out", type=Path, help="JSON file to write (default: print only)")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run these parts only")
    parser.add_argument("--scratch", type=Path, help="folder for the synthetic collections (default /tmp)")
    parser.add_argument("--sizes", type=int, nargs="+", help="collection sizes for the query part")
    parser.add_argument("--default-dtype", default=None, choices=("float32", "bfloat16"),
                        help="the precision counted as the product's default (default: what it picks here)")
    return parser


def _run_parts(report: dict, args: argparse.Namespace) -> None:
    """Each part asked for, its report under its name and its figures at the top level."""
    parts = args.only or PARTS
    if "hardware" in parts:
        report["hardware"] = _hardware(args.quick)
    if "coldstart" in parts:
        report["coldstart"] = _coldstart(args.quick, args.scratch)
        report |= {key: value for key, value in report["coldstart"].items() if isinstance(value, int | float)}
    if "indexing" in parts:
        report["indexing"] = _indexing(args.quick, report.get("hardware"), args.default_dtype)
        report |= {key: report["indexing"][key] for key in INDEXING_KEYS}
    if "features" in parts:
        report["features"] = _features(args.quick)
        report |= results.feature_figures(report["features"])
    if "dates" in parts:
        report["dates"] = _dates(args.quick)
        report |= {key: report["dates"][key] for key in DATE_KEYS}
    if "ocr" in parts:
        report["ocr"] = _ocr(args.quick, args.default_dtype)
        report |= {key: report["ocr"][key] for key in OCR_KEYS}
    if "duplicates" in parts:
        report["duplicates"] = _duplicates(args.quick)
        report |= {f"duplicates_{key}": report["duplicates"][key] for key in DUPLICATE_KEYS}
    if "query" in parts:
        report["query"] = _query(args.quick, args.scratch, args.sizes)
        report |= _query_summary(report["query"], report.get("hardware"))
    if "large" in parts:
        report["large"] = _large(args.quick, args.scratch)
        report |= {f"{key}_10m": report["large"][key] for key in LARGE_KEYS}
    if "scaleout" in parts:
        report["scaleout"] = _scaleout(args.quick, args.scratch)
        report |= scaleout_figures(report["scaleout"])
    if "video" in parts:
        report["video"] = _video(args.quick)
        report |= {f"video_{key}": value for key, value in report["video"].items()}
    if "reconcile" in parts:
        report["reconcile"] = _reconcile(args.quick, args.scratch)
        from .reconcile import figures

        report |= figures(report["reconcile"])


def _hardware(quick: bool) -> dict:
    """bfloat16 is timed only where the CPU has bfloat16 matmul instructions (the precision
    probe's rule): elsewhere torch emulates it at a few hundredths of float32's speed, a
    2048-wide matmul takes about a minute, and the product never runs it."""
    seconds = 0.5 if quick else 2.0
    dtypes = [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("int8", "int8")]
    return {
        "matmul_peak_gflops": {
            name: round(hardware.matmul_peak(dtype, seconds=seconds) / 1e9, 1)
            for name, dtype in dtypes if name != "bfloat16" or "bfloat16" in precision.cpu_speeds()
        },
        "precision_probe_gflops": precision.cpu_speeds(),  # what `--dtype auto` chooses from
        "read_bandwidth_gbs": round(hardware.read_bandwidth(0.25 if quick else 1.0) / 1e9, 1),
    }


def _coldstart(quick: bool, scratch: Path | None) -> dict:
    """Full: the real-size pair written to disk once (9.4 GB, kept under the scratch folder for
    the next run), 12 pictures indexed, three rounds of each cold command. Quick: the demo
    model in its place, one round."""
    folder = Path(scratch or tempfile.gettempdir()) / "blip2-search-coldstart"
    folder.mkdir(parents=True, exist_ok=True)
    return coldstart.run(quick, folder, log=_log)


INDEXING_KEYS = ("index_speedup_same_precision", "index_speedup_default", "encoder_passes_per_image",
                 "embed_fraction_of_peak")


def _indexing(quick: bool, machine_hw: dict | None, default_dtype: str | None) -> dict:
    """Full: the real depths, 2 images through the plain loop and 48 through the product (in
    batches sized to memory, as the CLI's), 12 new tokens with 5 beams; the stage figures on a
    batch of 8. Quick: 2 layers of each stack, 3 tokens."""
    peaks = (machine_hw or _hardware(quick))["matmul_peak_gflops"]
    depth = realsize.Depth(vision=2, qformer=2, language=2) if quick else realsize.Depth()
    return _in_fresh_process(
        indexing.run, depth, plain_images=1 if quick else 2, product_images=4 if quick else 48,
        stage_batch=4 if quick else 8, new_tokens=3 if quick else 12,
        peaks={name: gflops * 1e9 for name, gflops in peaks.items()},
        default_dtype=default_dtype or precision.default_dtype("cpu"), agreement_images=8 if quick else 64)


def _in_fresh_process(fn, *args, **kwargs):
    """Run a part in a child process set up as this one: the indexing part builds three
    real-size models in turn (15 GB each at float32), and the next part should not start in
    a process whose heap they fragmented.

    The child's main module is a `-c` string, as light as the `blip2-search` command's: the
    indexer's decoding workers are spawned, and a spawned process first imports its parent's
    main module. This module imports torch and transformers (3.5 s); the CLI's imports take
    0.2 s. Run under this module, each index run's two workers spent that import on the
    cores the model was using, and its first batch waited 3.3 s for its images (profiled,
    48 images). `fn` is given `log`, the child's `_log`."""
    with tempfile.TemporaryDirectory() as scratch:
        call, result = Path(scratch) / "call.pickle", Path(scratch) / "result.pickle"
        call.write_bytes(pickle.dumps((fn, args, kwargs)))
        code = ("import pickle, sys; from pathlib import Path; from benchmarks.run import _configured, _log; "
                "fn, args, kwargs = pickle.loads(Path(sys.argv[1]).read_bytes()); "
                "Path(sys.argv[2]).write_bytes(pickle.dumps(_configured(fn, *args, log=_log, **kwargs)))")
        subprocess.run([sys.executable, "-c", code, str(call), str(result)], check=True)
        return pickle.loads(result.read_bytes())


def _configured(fn, *args, **kwargs):
    runtime.configure()
    return fn(*args, **kwargs)


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _text_engine(quick: bool):
    """The text side at its real size (a 12-layer Q-Former); the image encoder and the
    language model, which a text query never runs, are cut to one layer."""
    pair = realsize.build(realsize.Depth(vision=1, qformer=2 if quick else 12, language=1))
    from search.config import Precision
    from search.models.engine import Blip2Engine
    from search.models.reading import query_precision

    # text queries in the CPU default's precision (bfloat16 where the CPU has its matmuls)
    query = query_precision(Precision(), precision.Plan("float32"), torch.device("cpu"))
    return Blip2Engine.from_pair(pair, name="blip2-real-size-random", query_dtype=query)


LARGE_KEYS = ("recall_at_10", "query_p50_ms", "query_p99_ms", "bytes_per_image_ram")


def _large(quick: bool, scratch: Path | None) -> dict:
    """10,000,000 vectors (312,500 images) in 4 segments; quick: 4,000 images in 4 segments."""
    sizes = {"images": 4_000, "images_per_segment": 1_000, "probes": 20, "queries": 20} if quick else {}
    return large.run(_text_engine(quick), scratch=scratch, log=_log, **sizes)


def scaleout_figures(part: dict) -> dict:
    """The scaleout part's figures, keyed by where they were measured and the image count."""
    size = results.size_label(part["images"])
    out = {f"scaleout_fanout_ms_p50_{size}": part["fanout_ms_p50"],
           f"scaleout_top10_agreement_{size}": part["top10_agreement_with_one_machine"]}
    for where in ("one_machine", "in_process", "ray_serve"):
        out |= {f"scaleout_{key}_{where}_{size}": value for key, value in part[where].items()}
    return out


def _scaleout(quick: bool, scratch: Path | None) -> dict:
    """Full: 1,000,000 images of synthetic vectors in 4 shards (compressed), 100 probes; quick:
    2,000 images, 8 probes. In a fresh process (it starts a Ray instance of its own)."""
    from . import scaleout

    images, probes = (2_000, 8) if quick else (1_000_000, 100)
    return _in_fresh_process(scaleout.run, images, 4, probes=probes, scratch=scratch)


def _video(quick: bool) -> dict:
    """Full: a minute of video, indexed at the demo model and at the real depths; quick: 10 s,
    2 layers a stack. In a fresh process: it builds a real-size model."""
    from . import video

    depth = realsize.Depth(vision=2, qformer=2, language=2) if quick else realsize.Depth()
    return _in_fresh_process(video.run, depth, seconds=10.0 if quick else 60.0)


def _reconcile(quick: bool, scratch: Path | None) -> dict:
    """Full: 100,000 unchanged files, 3 rounds, then 1,000 touched; quick: 2,000, one round,
    100 touched. The tree is built in one fresh process (its minutes are reported apart) and
    measured in another, so that the peak memory is the reconcile's."""
    from . import reconcile

    files, touched, rounds = (2_000, 100, 1) if quick else (100_000, 1_000, 3)
    with tempfile.TemporaryDirectory(prefix="bench-reconcile-", dir=scratch) as folder:
        setup = _in_fresh_process(reconcile.build, Path(folder), files)
        measured = _in_fresh_process(reconcile.measure, Path(folder), touched=touched, rounds=rounds)
    if measured["unchanged"] != files:
        raise RuntimeError(f"the reconcile saw {measured['unchanged']} unchanged files of {files}")
    return setup | measured


def _dates(quick: bool) -> dict:
    """Full: 10,000 demo images, 8 queries; quick: 300 images, 2 queries. In a fresh process."""
    return _in_fresh_process(dates.run, 300 if quick else 10_000, queries=2 if quick else 8)


def _duplicates(quick: bool) -> dict:
    """Full: 100,000 images of synthetic vectors and hashes; quick: 5,000. In a fresh process,
    so that its peak memory is its own."""
    return _in_fresh_process(duplicates.run, 5_000 if quick else 100_000)


DUPLICATE_KEYS = ("seconds_finding", "peak_rss_mb", "planted_pair_recall")
DATE_KEYS = ("date_order_p50_ms_demo_features", "date_order_p50_ms_demo_files")


OCR_KEYS = ("ocr_share_of_index_time", "index_seconds_per_image_with_ocr")


def _ocr(quick: bool, default_dtype: str | None) -> dict:
    """Full: 32 rendered pictures of words at the real depths, 12 new tokens with 5 beams;
    quick: 2 pictures, 2 layers a stack, 3 tokens, one run each way. In a fresh process."""
    depth = realsize.Depth(vision=2, qformer=2, language=2) if quick else realsize.Depth()
    return _in_fresh_process(ocr.run, depth, images=2 if quick else 32, new_tokens=3 if quick else 12,
                             default_dtype=default_dtype, rounds=1 if quick else 2)


def _features(quick: bool) -> dict:
    """Full: 20 images at the real depths, three questions; quick: 4 images, 2 layers a stack.
    In a fresh process: it builds a real-size model."""
    depth = realsize.Depth(vision=2, qformer=2, language=2) if quick else realsize.Depth()
    return _in_fresh_process(features.run, depth, images=4 if quick else 20, asks=1 if quick else 3)


def _query(quick: bool, scratch: Path | None, sizes: list[int] | None) -> list[dict]:
    engine = _text_engine(quick)
    sizes = sizes or ([2_000] if quick else [10_000, 100_000, 1_000_000])
    served_size = 2_000 if quick else 100_000
    with tempfile.TemporaryDirectory(dir=scratch) as model_dir:
        model = serving.save_text_model(Path(model_dir), qformer=2 if quick else 12)

        def served(folder: Path, row: dict) -> dict:
            if (row["images"], row["vectors"]) != (served_size, "clustered"):
                return {}
            result = serving.throughput(folder, model, requests=200 if quick else 2000, log=_log)
            return {f"api_{key}": value for key, value in result.items()}

        return query.run(sizes, engine, queries=32, dim=256, probes=20 if quick else 100,
                         scratch=scratch, log=_log, served=served)


def _query_summary(rows: list[dict], machine_hw: dict | None) -> dict:
    """The top-level keys of a report that the query part answers; the bytes an image are the
    largest size's, and their keys say it (`bytes_per_image_disk_1m`): `--sizes` changes it."""
    def pick(images, vectors="clustered", mode="auto"):
        wanted = (images, vectors, mode)
        return next((r for r in rows if (r["images"], r["vectors"], r["mode"]) == wanted), None)

    out = {}
    for size, label in ((100_000, "100k"), (1_000_000, "1m")):
        row = pick(size)
        if row:
            out[f"query_p50_ms_{label}"] = row["query_p50_ms"]
            out[f"query_p99_ms_{label}"] = row["query_p99_ms"]
            out[f"recall_at_10_{label}"] = row["recall_at_10"]
            out[f"similar_p50_ms_{label}"] = row["similar_p50_ms"]
            out[f"similar_recall_at_10_{label}"] = row["similar_recall_at_10"]
        if row and "api_searches_per_s" in row:
            for key in ("searches_per_s", "p50_ms", "p99_ms", "non_200"):
                out[f"api_{key}_{label}"] = row[f"api_{key}"]
    exact = pick(100_000, mode="exact")
    if exact and machine_hw:
        bound_ms = exact["bytes_scanned_exact"] / (machine_hw["read_bandwidth_gbs"] * 1e9) * 1000
        out["exact_p50_over_bandwidth_bound_100k"] = round(exact["search_p50_ms"] / bound_ms, 2)
    largest = max(rows, key=lambda r: r["images"]) if rows else None
    if largest:
        size = results.size_label(largest["images"])
        out[f"bytes_per_image_disk_{size}"] = largest["bytes_per_image_disk"]
        compressed = [r for r in rows if r["index"] == "compressed" and r["images"] == largest["images"]]
        if compressed:
            out[f"bytes_per_image_ram_compressed_{size}"] = compressed[0]["bytes_per_image_ram"]
    return out


if __name__ == "__main__":
    sys.exit(main())
