"""Which kind of host a figure was measured on: its bucket, and the host record current.json keeps.

Figures compare only between hosts of one bucket: the CPU's vendor, then the widest matrix
instructions it reports. The flags alone do not tell hosts apart: an AMD EPYC and an Intel
Xeon (family 6, model 207) both report AVX-512 with bfloat16 and no AMX, yet bfloat16 matmuls
ran at 4.0 times float32's speed on the EPYC (run 9: 800.8 against 199.1 GFLOP/s) and at half
of it on the Xeon (after run 10: 158.3 against 311.2), which changes every indexing figure.
"""

from __future__ import annotations

VENDORS = {"GenuineIntel": "intel", "AuthenticAMD": "amd"}  # /proc/cpuinfo's vendor_id
# From the widest down: the first of these /proc/cpuinfo flags the CPU reports names its tier.
TIERS = (("amx_bf16", "amx"), ("avx512_bf16", "avx512-bf16"), ("avx512f", "avx512"), ("avx2", "avx2"))
# A report's `machine` keys for the flags that matter, and the /proc/cpuinfo flag each records.
FLAGS = {"amx": "amx_bf16", "avx512_bf16": "avx512_bf16", "avx512": "avx512f"}


def bucket(vendor_id: str, flags: set[str]) -> str:
    """`intel-amx`, `intel-avx512-bf16`, `amd-avx512-bf16`, `amd-avx2`, ...: the vendor (its
    vendor_id in lower case when it is neither Intel nor AMD), then the tier; `base` below AVX2."""
    vendor = VENDORS.get(vendor_id, vendor_id.lower() or "unknown")
    tier = next((name for flag, name in TIERS if flag in flags), "base")
    return f"{vendor}-{tier}"


def from_machine(machine: dict) -> dict:
    """The host record of a report's `machine`, from any version of it: reports before run 9 lack
    the flags and reports before run 11 lack `cpu_id` ("GenuineIntel 6 207"); what a report did
    not record stays None, and so does the bucket when the flags were not recorded."""
    vendor_id, family, model = (machine.get("cpu_id") or "? ? ?").split()
    cpu = machine.get("cpu", "")
    if vendor_id == "?":  # the model name says the vendor ("AMD EPYC", "Intel(R) Xeon(R) Processor")
        vendor_id = "AuthenticAMD" if "AMD" in cpu else "GenuineIntel" if "Intel" in cpu else "?"
    flags = {name: machine.get(name) for name in FLAGS}
    if flags["avx512"] is None and flags["avx512_bf16"]:
        flags["avx512"] = True  # AVX512_BF16 is an AVX-512 extension: no CPU has it without AVX512F
    reported = {FLAGS[name] for name, on in flags.items() if on}
    found = machine.get("host_bucket") or (bucket(vendor_id, reported) if flags["amx"] is not None else None)
    return {"vendor": None if vendor_id == "?" else vendor_id, "model": cpu or None,
            "family_id": _number(family), "model_id": _number(model), "flags": flags,
            "cores": machine.get("cores"), "bucket": found}


def _number(text: str) -> int | None:
    return None if text == "?" else int(text)
