"""current.json made again from the reports kept in benchmarks/results, oldest first, so that
the newest measurement of each key wins: `python -m benchmarks.results rebuild`.

A report's date is its own `date` where it has one (run.py writes it since current.json
exists), else the author date of the first commit that held the report's exact content
(`git log --find-object`), said in the figure's `note`. Not the file's first commit: latest.json
and after-run11-indexing-xeon.json were overwritten by later runs, and host-amx.json is run 8's
latest.json committed again under a new name. Reports from before keys said their size get
the names run.py gives those figures now (`_renamed`). Where a report lacks its command or
its host's flags, what BENCHMARKS.md says of that run is recorded instead, and said so.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from . import results

# The runs whose file names do not say them, as BENCHMARKS.md names them.
RUNS = {"host-amx.json": "run 8", "latest.json": "run 9", "host-no-amx.json": "run 9"}
# run 8 recorded no flags; BENCHMARKS.md (run 8, "Machine") says its CPU has bfloat16 matrix
# instructions, and its bfloat16 matmul peak was 6.6 times float32's (2,267.8 against 343.3).
FLAGS_FROM_TEXT = {"host-amx.json": ({"amx": True}, "host: amx from BENCHMARKS.md (run 8: \"its CPU has "
                                     "bfloat16 matrix instructions\"), not recorded by the run")}
# A file holding one part's return value, without a report around it: BENCHMARKS.md ("After run
# 9", date order) says a script wrote it, on the host kind of that section.
BARE = {"after-run9-features-200.json": {
    "command": "unknown: features.run(realsize.Depth(), images=200, asks=1) called from a script "
               "(BENCHMARKS.md, after run 9); the file holds that call's return value only",
    "machine": {"cpu": "AMD EPYC", "amx": False, "avx512_bf16": True, "cores": 2},
    "note": "command and host from BENCHMARKS.md, after run 9 (AMD EPYC, 2 cores, AVX-512 with "
            "bfloat16, no AMX), not recorded by the run; only its 200-image figures are kept "
            "(its ask p50 is one question)"}}


def rebuild(folder: Path, current: Path) -> dict:
    """Write `current` from every report in `folder` (itself left out), oldest first."""
    current.unlink(missing_ok=True)
    reports = [_read(path) for path in sorted(folder.glob("*.json")) if path != current]
    # Oldest first; of two files holding one report (latest.json and host-no-amx.json), the one its
    # command wrote first, so that it names the run.
    reports.sort(key=lambda r: (results.when(r[1]["date"]), not r[1]["command"].endswith(r[0].name),
                                r[0].name))
    merged: dict = {}
    for path, report, extra in reports:
        run = f"{RUNS[path.name]}: {path.name}" if path.name in RUNS else path.name
        merged = results.merge(report, run, current, **extra)
    return merged


def _read(path: Path) -> tuple[Path, dict, dict]:
    """(path, the report as run.py writes one now, the provenance fields it lacks: `note`)."""
    report, notes = json.loads(path.read_text()), []
    if path.name in BARE:
        told, size = BARE[path.name], results.size_label(report["images"])
        kept = {k: v for k, v in results.feature_figures(report).items() if k.endswith(f"_{size}")}
        report = {"quick": False, "command": told["command"], "machine": told["machine"]} | kept
        notes.append(told["note"])
    if path.name in FLAGS_FROM_TEXT:
        flags, note = FLAGS_FROM_TEXT[path.name]
        report["machine"] = report["machine"] | flags
        notes.append(note)
    if "date" not in report:
        report["date"], commit = _committed(path)
        notes.append(f"date: of the first commit that held this report ({commit}): the report records "
                     "none, and its run finished before it")
    return path, _renamed(report), {"note": "; ".join(notes)} if notes else {}


def _renamed(report: dict) -> dict:
    """The report with its figures under run.py's present names: the features part's with
    their image count, the query part's bytes an image with the largest size measured."""
    renamed = dict(report)
    if "features" in report:
        for old in [*results.FEATURE_FIGURES, *results.FEATURE_UNSIZED]:
            renamed.pop(old, None)
        renamed |= results.feature_figures(report["features"])
    if "query" in report:
        size = results.size_label(max(row["images"] for row in report["query"]))
        for old in ("bytes_per_image_disk", "bytes_per_image_ram_compressed"):
            if old in renamed:
                renamed[f"{old}_{size}"] = renamed.pop(old)
    return renamed


def _committed(path: Path) -> tuple[str, str]:
    """(author date, short hash) of the oldest commit that added `path`'s exact content."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=path.parent, check=True, capture_output=True,
                              text=True).stdout.strip()

    blob = git("hash-object", path.name)
    found = git("log", "--reverse", "--format=%aI %h", f"--find-object={blob}").splitlines()
    if not found:
        raise RuntimeError(f"{path}: no date in the report and its content was never committed")
    date, commit = found[0].split()
    return date, commit

