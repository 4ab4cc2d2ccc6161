"""The newest measurement of each benchmark figure, and where it comes from:
benchmarks/results/current.json.

A report (`python -m benchmarks.run`) holds the figures of one run: its top-level keys other
than its own provenance (`quick`, `machine`, `command`, `date`, `seconds`) and the parts'
reports. latest.json is the last full run, not the newest figure of each key; current.json
maps each figure key any run has produced to its newest measurement, `{"value", "run",
"date", "host", "command"}` (and `"note"` where some of that was reconstructed afterwards).
`run.py` calls `record` at the end of every command, `--out` or not; a `--quick` report
changes nothing: a quick run is a smoke test on cut-down models, and its figures must not
replace real ones.

`python -m benchmarks.results table` prints the table that opens BENCHMARKS.md
(`benchmarks/targets.py`); `python -m benchmarks.results rebuild` makes current.json again
from the reports kept in benchmarks/results (`benchmarks/history.py`) and rewrites that table.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import hosts, targets

RESULTS = Path(__file__).resolve().parent / "results"
CURRENT = RESULTS / "current.json"
BENCHMARKS_MD = RESULTS.parents[1] / "BENCHMARKS.md"
PARTS = ("hardware", "coldstart", "indexing", "features", "dates", "ocr", "duplicates", "query", "large",
         "scaleout", "video", "reconcile")
PROVENANCE = ("quick", "machine", "command", "date", "seconds")
# The features part's own keys (its report keeps them, and tests/test_benchmarks.py reads them,
# but their 20 holds only in a full run: a quick one matches 4 images, a direct call may match
# 200) -> the figures' keys, which end in the number of images measured: `_20` in a full run.
FEATURE_FIGURES = {"rerank20_ms_realsize_cpu_features": "rerank_ms_realsize_cpu_features",
                   "rerank20_ms_realsize_cpu_recompute": "rerank_ms_realsize_cpu_recompute",
                   "rerank_speedup_features": "rerank_speedup_features",
                   "match_max_abs_diff_features": "match_max_abs_diff_features",
                   "date_order20_ms_realsize_cpu_features": "date_order_ms_realsize_cpu_features",
                   "date_order20_ms_realsize_cpu_recompute": "date_order_ms_realsize_cpu_recompute"}
FEATURE_UNSIZED = ("ask_p50_ms_realsize_cpu", "disk_bytes_per_image_features")  # one question; one image


def size_label(images: int) -> str:
    """How a key says the collection size it was measured at: 20, 100k, 1m."""
    for unit, suffix in ((1_000_000, "m"), (1_000, "k")):
        if images >= unit and images % unit == 0:
            return f"{images // unit}{suffix}"
    return str(images)


def feature_figures(part: dict) -> dict:
    """The figures of the features part's report, each sized key ending in its image count (an
    older report lacks some: run 9's has no date order)."""
    size = size_label(part["images"])
    return ({f"{new}_{size}": part[old] for old, new in FEATURE_FIGURES.items() if old in part}
            | {key: part[key] for key in FEATURE_UNSIZED if key in part})


def figures(report: dict) -> dict:
    """A report's figures, each a key of its own: a figure given per precision or per side
    (`index_speedup_same_precision: {"float32": ..., "bfloat16": ...}`) is one key each
    (`index_speedup_same_precision_float32`), so that a run measuring one of them does not
    take the others out of current.json."""
    found = {}
    for key, value in report.items():
        if key in PARTS or key in PROVENANCE:
            continue
        each = value.items() if isinstance(value, dict) else None
        found |= {f"{key}_{name}": v for name, v in each} if each is not None else {key: value}
    return found


def now() -> str:
    """A report's `date`: when its run finished, ISO 8601 in UTC to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def merge(report: dict, run: str, path: Path = CURRENT, **extra) -> dict:
    """Merge a finished report's figures into the file at `path` (made if absent), a key replaced
    only by a newer measurement (dates compared as times); a quick report changes nothing.
    `run` names the run (its report file); `extra` fields (`host`, `note`) override or add to
    what the report records. Returns the file's content after."""
    current = load(path)
    if report.get("quick"):
        return current
    entry = {"run": run, "date": report["date"], "host": hosts.from_machine(report["machine"]),
             "command": report["command"]} | extra
    changed = False
    for key, value in figures(report).items():
        if key not in current or when(entry["date"]) > when(current[key]["date"]):
            current[key], changed = {"value": value} | entry, True
    if changed or not path.exists():
        path.write_text(json.dumps(dict(sorted(current.items())), indent=1, ensure_ascii=False) + "\n")
    return current


def record(report: dict, run: str) -> bool:
    """`merge` into benchmarks/results/current.json, then BENCHMARKS.md's table from it; False
    (and nothing written) for a quick report."""
    if report.get("quick"):
        return False
    targets.write(BENCHMARKS_MD, merge(report, run))
    return True


def load(path: Path = CURRENT) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def when(date: str) -> datetime:
    """An ISO 8601 date or time; one without a zone is UTC (as every date written here is)."""
    parsed = datetime.fromisoformat(date)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.results", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("table", "rebuild"),
                        help="table: print BENCHMARKS.md's table from current.json; rebuild: make "
                             "current.json from the reports in benchmarks/results, and the table")
    args = parser.parse_args(argv)
    if args.action == "rebuild":
        from . import history  # which imports this module

        current = history.rebuild(RESULTS, CURRENT)
        changed = targets.write(BENCHMARKS_MD, current)
        table = "table rewritten" if changed else "table as it was"
        print(f"{CURRENT}: {len(current)} figures; {BENCHMARKS_MD}: {table}")
        return 0
    print(targets.table(load()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
