"""The process's memory: what it holds, what an indexing run may hold, and glibc's malloc
made to return what is freed, or to keep it for reuse around an indexing run's batches.
Nothing here imports torch."""

from __future__ import annotations

import ctypes
import functools
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# glibc's mallopt parameters, and their defaults
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_TRIM_DEFAULT, _MMAP_MAX_DEFAULT = 128 * 1024, 65536
_reusing = {"depth": 0}
_reusing_lock = threading.Lock()


@contextmanager
def reusing_memory() -> Iterator[None]:
    """While inside, memory freed by this process stays in glibc's malloc for the next
    allocation, which then touches pages already mapped; on leaving, it goes back to the
    kernel (`malloc_trim`) and malloc's defaults return. Elsewhere a no-op.

    A model's activations are tensors of tens to hundreds of MB, each a fresh `mmap` from
    malloc and freed with `munmap`, so every batch faults all its pages in again: at real
    size that cost 0.2 s of an image's 2.5 s embedding and 0.6 s of its 3.3 s of captions
    (float32, batch 28; BENCHMARKS.md). Kept process-wide, it made a process that freed one
    model and built another grow out of memory, hence a scope: around an indexing run's
    batches, where the same sizes repeat."""
    libc = _glibc()
    if libc is None:
        yield
        return
    with _reusing_lock:
        _reusing["depth"] += 1
        if _reusing["depth"] == 1:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # an int: the most it takes
    try:
        yield
    finally:
        with _reusing_lock:
            _reusing["depth"] -= 1
            if _reusing["depth"] == 0:
                libc.mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
                libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_DEFAULT)
                libc.malloc_trim(0)


DEFAULT_BUDGET = 8 * 10**9  # bytes an indexing process holds by default (8 GB, as `--max-memory 8` says)


def memory_budget(total: int | None = None) -> int:
    """The memory an indexing run may hold by default: 8 GB, or half the machine's when it
    has less than 16 (`total`: its bytes, default read from the kernel)."""
    total = total if total is not None else _meminfo("MemTotal")
    return min(DEFAULT_BUDGET, total // 2) if total else DEFAULT_BUDGET


def resident_memory() -> int:
    """Bytes this process holds in memory now (VmRSS); 0 where unknown."""
    return _meminfo("VmRSS", "/proc/self/status")


def _meminfo(key: str, path: str = "/proc/meminfo") -> int:
    try:
        with open(path) as info:
            for line in info:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def trim_memory() -> None:
    """Give the memory this process has freed back to the kernel (glibc keeps freed blocks
    for reuse: building a model part from float32 layers freed as it went, at real size,
    left 1.7 GB held that the process no longer used)."""
    libc = _glibc()
    if libc is not None and not _reusing["depth"]:  # inside `reusing_memory`, kept on purpose
        libc.malloc_trim(0)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc
