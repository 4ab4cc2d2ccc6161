"""The table that opens BENCHMARKS.md: each figure of current.json, its target, its run and host.

The targets are the ones BENCHMARKS.md and the issues it quotes state; a figure without one has
"-" (none is made up here). The table sits between two marker comments in BENCHMARKS.md, so
that `write` can replace it whenever current.json changes.
"""

from __future__ import annotations

import re
from pathlib import Path

BEGIN, END = "<!-- current:begin -->", "<!-- current:end -->"
KB = 1_000  # "≤ 18 KB" and "≤ 2 KB" read as the stricter bound
# key: (">=" or "<=", bound, as BENCHMARKS.md writes it)
TARGETS = {
    "index_speedup_same_precision_float32": (">=", 4, "≥ 4x"),
    "index_speedup_same_precision_bfloat16": (">=", 4, "≥ 4x"),
    "index_speedup_default": (">=", 8, "≥ 8x"),
    "embed_fraction_of_peak": (">=", 0.5, "≥ 0.5"),
    "rerank_ms_realsize_cpu_features_20": ("<=", 1_000, "≤ 1,000 ms"),
    "rerank_speedup_features_20": (">=", 10, "≥ 10x"),
    "match_max_abs_diff_features_20": ("<=", 0.01, "≤ 0.01"),
    "ask_p50_ms_realsize_cpu": ("<=", 3_000, "≤ 3,000 ms"),
    "query_p50_ms_100k": ("<=", 50, "≤ 50 ms"),
    "query_p99_ms_100k": ("<=", 150, "≤ 150 ms"),
    "recall_at_10_100k": (">=", 0.98, "≥ 0.98"),
    "query_p50_ms_1m": ("<=", 100, "≤ 100 ms"),
    "recall_at_10_1m": (">=", 0.95, "≥ 0.95"),
    "similar_p50_ms_100k": ("<=", 100, "≤ 100 ms"),
    "similar_recall_at_10_100k": (">=", 0.95, "≥ 0.95"),
    "similar_p50_ms_1m": ("<=", 250, "≤ 250 ms"),
    "similar_recall_at_10_1m": (">=", 0.95, "≥ 0.95"),
    "api_searches_per_s_100k": (">=", 25, "≥ 25 a second"),
    "exact_p50_over_bandwidth_bound_100k": ("<=", 1.5, "≤ 1.5x"),
    "bytes_per_image_disk_100k": ("<=", 18 * KB, "≤ 18 KB (compressed mode)"),
    "bytes_per_image_disk_1m": ("<=", 18 * KB, "≤ 18 KB (compressed mode)"),
    "bytes_per_image_ram_compressed_100k": ("<=", 2 * KB, "≤ 2 KB"),
    "bytes_per_image_ram_compressed_1m": ("<=", 2 * KB, "≤ 2 KB"),
    "recall_at_10_10m": (">=", 0.95, "≥ 0.95"),
    "cli_search_cold_ratio_demo": ("<=", 1.5, "≤ 1.5x the demo model's"),
    "cli_search_peak_gb_realsize": ("<=", 1.5, "≤ 1.5 GB"),
    "cli_similar_cold_ratio_stats": ("<=", 1.5, "≤ 1.5x stats"),
    "cli_similar_peak_gb_realsize": ("<=", 1, "≤ 1 GB"),
    "serve_peak_gb_after_text_search": ("<=", 1.5, "≤ 1.5 GB"),
    "index_peak_gb_realsize_default": ("<=", 8, "≤ 8 GB"),
    "similar_p50_ms_10k": ("<=", 50, "≤ 50 ms"),
    "similar_p50_ms_20k": ("<=", 100, "≤ 100 ms"),
    "similar_recall_at_10_10k": (">=", 0.99, "≥ 0.99"),
    "similar_recall_at_10_20k": (">=", 0.99, "≥ 0.99"),
    "video_decode_s_per_min_720p": ("<=", 1, "≤ 1 s a minute (issue 31)"),
    "video_moments_per_min_720p": ("<=", 30, "≤ 30 a minute"),
    "video_moments_per_min_1080p": ("<=", 30, "≤ 30 a minute"),
    "reconcile_model_calls_100k": ("<=", 0, "0 (issue 32)"),
    "reconcile_s_100k": ("<=", 30, "≤ 30 s (BENCHMARKS.md, Reconcile)"),
}
# Table order: the parts in the order run.py runs them, a key in the first group one of whose
# prefixes it starts with; inside a group by the size the key ends in, then by name.
GROUPS = (("cli_", "serve_", "index_peak", "index_s_", "index_images", "int8_", "pair_gb"),
          ("index_speedup", "encoder_passes", "embed_fraction"),
          ("rerank_", "match_max", "ask_", "date_order_ms_", "disk_bytes_per_image_features"),
          ("date_order_p50",), ("ocr_", "index_seconds_per_image_with_ocr"), ("duplicates_",),
          ("query_", "recall_", "similar_", "api_", "exact_", "bytes_per_image_"), ("video_",),
          ("reconcile_",))
HEADER = ("| figure | value | target | met | run | date | host |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")


def table(current: dict) -> str:
    """The markdown table of current.json's content, one row a figure."""
    rows = [_row(key, current[key]) for key in sorted(current, key=_order)]
    return "\n".join([HEADER, *rows])


def write(markdown: Path, current: dict) -> bool:
    """Replace the table between the markers in `markdown`; False when the file or its markers
    are absent (an installed copy without BENCHMARKS.md) or the table is unchanged."""
    if not markdown.exists():
        return False
    text = markdown.read_text()
    begin, end = text.find(BEGIN), text.find(END)
    if begin < 0 or end < begin:
        return False
    updated = f"{text[:begin]}{BEGIN}\n{table(current)}\n{text[end:]}"
    if updated != text:
        markdown.write_text(updated)
    return updated != text


def _row(key: str, entry: dict) -> str:
    target = TARGETS.get(key)
    met = _met(entry["value"], target) if target else "-"
    host = entry["host"]
    where = [host["bucket"] or "bucket not recorded"]
    if host["family_id"] is not None:
        where.append(f"family {host['family_id']} model {host['model_id']}")
    where.append(f"{host['cores']} cores")
    cells = (f"`{key}`", _value(entry["value"]), target[2] if target else "-", met, entry["run"],
             entry["date"][:10], ", ".join(where))
    return "| " + " | ".join(cells) + " |"


def _met(value, target: tuple) -> str:
    """"yes" or "no"; for a figure per precision, each precision's."""
    op, bound, _ = target
    holds = (lambda v: v >= bound) if op == ">=" else (lambda v: v <= bound)
    if isinstance(value, dict):
        return ", ".join(f"{name} {'yes' if holds(v) else 'no'}" for name, v in value.items())
    return "yes" if holds(value) else "no"


def _value(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{name} {v}" for name, v in value.items())
    return f"{value:,}" if isinstance(value, int) else str(value)


def _order(key: str) -> tuple:
    group = next((i for i, prefixes in enumerate(GROUPS) if key.startswith(prefixes)), len(GROUPS))
    size = re.search(r"_(\d+)([km]?)$", key)
    images = int(size[1]) * {"": 1, "k": 1_000, "m": 1_000_000}[size[2]] if size else 0
    return group, images, key
