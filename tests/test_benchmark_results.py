"""current.json: the newest measurement of each benchmark figure with its provenance, merged
from each report (benchmarks/results.py), and BENCHMARKS.md's table made from it."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import hosts, results, targets

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {"value", "run", "date", "host", "command"}
HOST_FIELDS = {"vendor", "model", "family_id", "model_id", "flags", "cores", "bucket"}
EPYC = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD 25 17", "amx": False, "avx512_bf16": True,
        "avx512": True, "host_bucket": "amd-avx512-bf16", "cores": 2}
XEON = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_id": "GenuineIntel 6 207", "amx": False,
        "avx512_bf16": True, "avx512": True, "host_bucket": "intel-avx512-bf16", "cores": 2}


def report(date: str, quick: bool = False, machine: dict = EPYC, **figures) -> dict:
    """A report as run.py writes one: provenance, a part's own report, top-level figures."""
    return {"quick": quick, "machine": machine, "command": f"python -m benchmarks.run  # {date}",
            "query": [{"images": 100_000}], "seconds": 3, "date": date} | figures


def test_a_newer_measurement_replaces_an_older_one(tmp_path):
    current = tmp_path / "current.json"
    results.merge(report("2026-12-02T10:00:00+00:00", query_p50_ms_100k=37.06), "run 9", current)
    merged = results.merge(report("2026-12-02T13:00:00+00:00", machine=XEON, query_p50_ms_100k=24.2),
                           "after run 9", current)
    assert merged == json.loads(current.read_text())
    entry = merged["query_p50_ms_100k"]
    assert (entry["value"], entry["run"], entry["date"]) == (24.2, "after run 9", "2026-12-02T13:00:00+00:00")
    assert entry["host"]["bucket"] == "intel-avx512-bf16" and entry["host"]["model_id"] == 207


def test_an_older_measurement_never_replaces_a_newer_one(tmp_path):
    current = tmp_path / "current.json"
    results.merge(report("2026-12-03T05:57:36+00:00", index_speedup_default=11.18), "run 11", current)
    before = current.read_bytes()
    merged = results.merge(report("2026-12-02", index_speedup_default=10.62, recall_at_10_1m=0.997), "run 9",
                           current)
    assert merged["index_speedup_default"]["value"] == 11.18  # a date alone counts as that day's start
    assert merged["recall_at_10_1m"]["value"] == 0.997  # a key the newer run did not measure is added
    same_time = results.merge(report("2026-12-03T05:57:36+00:00", index_speedup_default=1.0), "again",
                              current)
    assert same_time["index_speedup_default"]["run"] == "run 11"  # only a newer one replaces
    assert current.read_bytes() != before


def test_a_quick_run_changes_nothing(tmp_path):
    current = tmp_path / "current.json"
    assert results.merge(report("2026-12-04T00:00:00+00:00", quick=True, query_p50_ms_100k=1.0), "quick",
                         current) == {}
    assert not current.exists()
    results.merge(report("2026-12-02T10:00:00+00:00", query_p50_ms_100k=37.06), "run 9", current)
    before = current.read_bytes()
    results.merge(report("2026-12-04T00:00:00+00:00", quick=True, query_p50_ms_100k=1.0, new_key=2), "quick",
                  current)
    assert current.read_bytes() == before


def test_every_key_carries_its_provenance_and_only_figures_are_keys(tmp_path):
    current = tmp_path / "current.json"
    merged = results.merge(report("2026-12-02T10:00:00+00:00", recall_at_10_100k=0.999,
                                  index_speedup_same_precision={"float32": 3.34, "bfloat16": 4.27}),
                           "run 9", current, note="reconstructed")
    assert set(merged) == {"recall_at_10_100k", "index_speedup_same_precision_float32",  # a key a precision;
                           "index_speedup_same_precision_bfloat16"}  # no part, no provenance
    for entry in merged.values():
        assert FIELDS <= set(entry) and entry["note"] == "reconstructed"
        assert entry["host"]["vendor"] == "AuthenticAMD" and entry["host"]["flags"]["amx"] is False
    later = results.merge(report("2026-12-03T10:00:00+00:00", index_speedup_same_precision={"float32": 5.02}),
                          "after run 11", current)
    assert later["index_speedup_same_precision_float32"]["value"] == 5.02
    assert later["index_speedup_same_precision_bfloat16"]["value"] == 4.27  # not measured again: kept


def test_keys_say_the_size_they_were_measured_at():
    part = {"images": 200, "rerank20_ms_realsize_cpu_features": 6377, "rerank_speedup_features": 31.9,
            "ask_p50_ms_realsize_cpu": 2915, "disk_bytes_per_image_features": 365186}
    assert results.feature_figures(part) == {
        "rerank_ms_realsize_cpu_features_200": 6377, "rerank_speedup_features_200": 31.9,
        "ask_p50_ms_realsize_cpu": 2915, "disk_bytes_per_image_features": 365186}
    assert [results.size_label(n) for n in (20, 2_000, 100_000, 1_000_000, 312_500)] == [
        "20", "2k", "100k", "1m", "312500"]


def test_host_buckets_tell_vendors_apart():
    assert hosts.bucket("AuthenticAMD", {"avx512f", "avx512_bf16", "avx2"}) == "amd-avx512-bf16"
    assert hosts.bucket("GenuineIntel", {"avx512f", "avx512_bf16", "avx2"}) == "intel-avx512-bf16"
    assert hosts.bucket("GenuineIntel", {"amx_bf16", "avx512f", "avx512_bf16"}) == "intel-amx"
    assert hosts.bucket("AuthenticAMD", {"avx2"}) == "amd-avx2"
    # reports before run 11 recorded no cpu_id, before run 9 no flags: the model name and the
    # flags recorded give the bucket; none is guessed where no flag was recorded
    epyc = hosts.from_machine({"cpu": "AMD EPYC", "amx": False, "avx512_bf16": True})
    assert (epyc["vendor"], epyc["bucket"]) == ("AuthenticAMD", "amd-avx512-bf16")
    assert hosts.from_machine({"cpu": "Intel(R) Xeon(R) Processor", "cores": 2})["bucket"] is None


def test_the_committed_current_json_gives_every_key_its_provenance():
    current = json.loads(results.CURRENT.read_text())
    assert current and list(current) == sorted(current)
    for key, entry in current.items():
        assert FIELDS <= set(entry), key
        assert entry["run"] and entry["command"], key
        assert results.when(entry["date"]).year >= 2026, key
        assert HOST_FIELDS <= set(entry["host"]), key
        assert entry["host"]["bucket"], key
    assert not [key for key in current if key.startswith(("rerank20", "date_order20"))]
    assert not {"bytes_per_image_disk", "bytes_per_image_ram_compressed"} & set(current)


def test_benchmarks_md_opens_with_the_table_of_the_committed_current_json():
    text = (ROOT / "BENCHMARKS.md").read_text()
    begin, end = text.index(targets.BEGIN) + len(targets.BEGIN), text.index(targets.END)
    assert text[begin:end].strip() == targets.table(results.load(results.CURRENT))
    assert text.index(targets.BEGIN) < text.index("## History")
