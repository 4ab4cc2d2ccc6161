"""`make bench-quick`: the benchmark suite runs end to end (a smoke test; no figure is held
to a threshold here, BENCHMARKS.md records them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench  # the benchmark suite's smoke iteration, several minutes

ROOT = Path(__file__).resolve().parents[1]


# The quick run takes about 5.5 minutes on an idle 2-core machine; beside the suite's other
# worker it took over 10 in a clean-clone CI run. The bound only stops a hung run.
QUICK_RUN_BOUND_S = 1800


def test_the_quick_benchmark_runs_and_writes_its_report(tmp_path):
    out = tmp_path / "quick.json"
    subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out),
                    "--scratch", str(tmp_path)], cwd=ROOT, check=True, capture_output=True,
                   timeout=QUICK_RUN_BOUND_S)
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["command"].startswith("python -m benchmarks.run --quick")
    assert report["hardware"]["read_bandwidth_gbs"] > 0
    indexing = report["indexing"]
    assert indexing["full_depth"] is False and indexing["depth"]["vision"] < 39  # says it is cut down
    assert set(report["index_speedup_same_precision"]) == {"float32", indexing["default_dtype"]}
    assert all(value > 0 for value in report["index_speedup_same_precision"].values())
    assert report["index_speedup_default"] > 0 and report["embed_fraction_of_peak"] > 0
    assert report["encoder_passes_per_image"] == {"plain": 2.0, "product": 1.0}
    lower = ("bfloat16", "int8") if "bfloat16" in report["hardware"]["matmul_peak_gflops"] else ("int8",)
    assert all(indexing[f"stages_{name}"]["embed_ms_per_image_per_vision_layer"] > 0 for name in lower)
    assert {name: found["images"] for name, found in indexing["agreement_trained_demo_model"].items()} == {
        **dict.fromkeys(lower, 8), "default": 8}
    scaleout = report["scaleout"]
    assert scaleout["ray_serve_same_as_in_process"] is True and scaleout["images"] == 2_000
    assert all(scaleout[where]["text_p50_ms"] > 0 for where in ("one_machine", "in_process", "ray_serve"))
    video = report["video"]
    assert video["decode_s_per_min_720p"] > 0 and video["moments_per_min_720p"] > 0
    assert video["moments_demo"] > 0 and video["index_s_per_min_real_size"] > 0
    assert video["bytes_per_moment_ram_real_size"] == 32 * 256 * 4  # the exact index's float32 rows
    reconciled = report["reconcile"]  # 2,000 unchanged files, then 100 touched: no model call
    assert (reconciled["files"], reconciled["unchanged"], reconciled["touched"]) == (2_000, 2_000, 100)
    assert reconciled["model_calls"] == report["reconcile_model_calls_2k"] == 0
    assert reconciled["seconds"] > 0 and reconciled["peak_rss_mb"] > 0 and report["reconcile_s_2k"] > 0
    rows = report["query"]
    assert {(r["vectors"], r["mode"]) for r in rows} == {(kind, mode) for kind in ("clustered", "uniform")
                                                        for mode in ("auto", "exact")}
    for row in rows:
        assert row["recall_at_10"] == 1.0  # exact below the compressed threshold
        assert 0 < row["search_p50_ms"] <= row["search_p99_ms"]
        assert row["bytes_per_image_disk"] > 32 * 256 * 2  # every vector stored in float16, at least
    served = next(row for row in rows if (row["vectors"], row["mode"]) == ("clustered", "auto"))
    assert served["api_searches_per_s"] > 0 and served["api_non_200"] == 0, served
    assert served["api_status"] == {"200": 200} and served["api_p50_ms"] <= served["api_p99_ms"]
    assert all(0 < row["similar_p50_ms"] and row["similar_recall_at_10"] == 1.0 for row in rows)
    kept = report["features"]
    assert kept["features_gained"] == kept["images"] == 4 and kept["match_max_abs_diff_features"] <= 0.01
    assert kept["disk_bytes_per_image_features"] == 257 * 1408 + 2 * (257 + 1408)
    assert kept["rerank20_ms_realsize_cpu_features"] > 0 and kept["ask_p50_ms_realsize_cpu"] > 0
    assert all(kept[f"date_order20_ms_realsize_cpu_{way}"] > 0 for way in ("features", "recompute"))
    dated = report["dates"]
    assert dated["images"] == 300 and dated["candidates"] == 200
    assert dated["date_order_p50_ms_demo_features"] > 0 and dated["date_order_p50_ms_demo_files"] > 0
    assert sum(dated["date_order_hits_features"]) > 0  # the demo model finds its shapes
    read = report["ocr"]
    assert read["ocr_alone"]["images"] == 2 and read["ocr_alone"]["seconds_per_image"] > 0
    assert read["ocr_alone"]["words_read"] > 0 and -1 < read["ocr_share_of_index_time"] < 1
    found = report["duplicates"]
    assert (found["images"], found["planted_copies"]) == (5_000, 250) and found["planted_pair_recall"] > 0
    assert found["seconds_finding"] > 0 and found["peak_rss_mb"] > 0 and report["duplicates_peak_rss_mb"] > 0
    assert report["machine"]["host_kind"] in ("amx", "no-amx")
    large = report["large"]
    assert (large["images"], large["vectors"], large["segments"]) == (4_000, 128_000, 4)
    assert 0 < large["search_p50_ms"] <= large["search_p99_ms"] and large["bytes_per_image_ram"] > 0
    assert {f"{key}_10m" for key in ("recall_at_10", "query_p50_ms", "bytes_per_image_ram")} <= set(report)
    assert not list(tmp_path.glob("bench-*"))  # scratch collections are removed
    cold = report["coldstart"]  # the demo model in the real-size pair's place: a smoke test
    assert cold["index_images_realsize"] == 4 and cold["index_peak_gb_realsize_default"] > 0
    assert cold["serve_parts_after_text_search"] == ["text"]  # text answered, nothing else built
    assert cold["cli_search_cold_s_realsize"] > 0 and cold["cli_similar_cold_ratio_stats"] > 0
    assert cold["cli_similar_peak_gb_realsize"] < cold["cli_search_peak_gb_realsize"]  # no model
    assert cold["similar_recall_at_10_2k"] == 1.0 and cold["vector_index_2k"] == "exact"
    assert cold["int8_cached_load_s_realsize"] >= 0 and "language_model" in cold["int8_stages"]
