"""What the machine can do, measured in the same run as the figures it bounds: the peak
FLOP/s of a plain large matmul per dtype, and memory read bandwidth."""

from __future__ import annotations

import functools
import os
import platform
import time

import torch

from search.models import precision

from . import hosts


def machine() -> dict:
    """The host, and which matmul instructions it has. `host_bucket` (`hosts.bucket`: vendor, then
    the widest matrix instructions, e.g. "intel-amx", "amd-avx512-bf16") says which figures
    compare: those from hosts of one bucket. `host_kind` ("amx" or "no-amx") is the older,
    coarser split, kept for the readers of earlier reports: it puts together an AMD EPYC and an
    Intel Xeon without AMX, whose bfloat16 matmuls ran at 4 times and at half float32's speed."""
    cpu, ids, flags = _cpuinfo()
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu_id = " ".join(ids.get(key, "?") for key in ("vendor_id", "cpu family", "model"))
    return {"cpu": cpu, "cpu_id": cpu_id,
            "amx": "amx_bf16" in flags, "avx512_bf16": "avx512_bf16" in flags, "avx512": "avx512f" in flags,
            "host_bucket": hosts.bucket(ids.get("vendor_id", platform.machine()), flags),
            "host_kind": "amx" if "amx_bf16" in flags else "no-amx",
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gib": round(memory, 1), "torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _cpuinfo() -> tuple[str, dict[str, str], set[str]]:
    """The first CPU's model name, its ids (vendor_id, cpu family, model: "Intel(R) Xeon(R)
    Processor" alone names no generation) and its flags, from /proc/cpuinfo where there is one."""
    cpu, ids, flags = platform.processor() or platform.machine(), {}, set()
    named = False
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name" and not named:
                cpu, named = value, True
            elif key in ("vendor_id", "cpu family", "model"):
                ids.setdefault(key, value)
            elif key == "flags":
                flags = set(value.split())
                break
    except OSError:
        pass
    return cpu, ids, flags


def matmul_peak(dtype: torch.dtype | str, size: int = 2048, seconds: float = 2.0,
                device: str = "cpu") -> float:
    """FLOP/s of repeated (size x size) @ (size x size) in `dtype`, best of the runs; "int8":
    a Linear layer with int8 weights as the product runs one on a CPU (activations quantized
    on the fly, `precision.quantize_linear_int8`)."""
    a = torch.randn(size, size, device=device)
    if dtype == "int8":
        linear = torch.nn.Sequential(torch.nn.Linear(size, size, bias=False)).requires_grad_(False)
        precision.quantize_linear_int8(linear)
        product = functools.partial(linear, a)
    else:
        a, b = a.to(dtype), torch.randn(size, size, device=device).to(dtype)
        product = functools.partial(torch.matmul, a, b)
    product()  # warm up
    best, spent = 0.0, 0.0
    while spent < seconds:
        _sync(device)
        started = time.perf_counter()
        product()
        _sync(device)
        took = time.perf_counter() - started
        spent += took
        best = max(best, 2 * size**3 / took)
    return best


def read_bandwidth(gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes/s of summing a float32 array larger than any cache, with torch's threads (all the
    cores the product uses), best of `repeats`."""
    data = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32)
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        data.sum()
        best = max(best, data.numel() * 4 / (time.perf_counter() - started))
    return best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
