"""Process settings for inference, applied once by an entry point (the CLI, the server, the
benchmarks), never at import.

torch and FAISS each keep an OpenMP pool. They run one after the other in this process (a
query encodes, then searches), so each gets every core this process may use, and no more:
more threads than cores makes a 2-core machine time-slice. Each pool is set by the package
that owns its library (`models`, `vectors`), imported here only when `configure` runs, so
`cores` costs a caller (the Ray driver) neither.

glibc's malloc is told to keep what it frees (`keep_freed_memory`): by default it gives
every block of 32 MB or more back to the kernel when freed, and the next batch's tensors
(a caption batch's key/value cache, a ViT layer's activations) come back as fresh pages,
each first touch a page fault. On the virtual machines measured here that refilling ran at
1 to 3.5 GB/s, and a batch of 28 float32 captions spent 7 to 12 s of its time in it
(BENCHMARKS.md). Kept, the memory is reused; the process stays at its peak size.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)


def cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure(threads: int | None = None) -> dict:
    """Set both thread pools to `threads` (default: every core)."""
    from . import vectors
    from .models import loading

    threads = threads or cores()
    loading.set_threads(threads)
    vectors.set_threads(threads)
    return {"threads": threads, "malloc_keeps_freed_memory": keep_freed_memory()}


def keep_freed_memory() -> bool:
    """Have glibc's malloc serve every size from its heap (no mmap of its own) and never trim
    the heap, so freed memory is reused, not refaulted. False where the C library is not
    glibc."""
    try:
        libc = ctypes.CDLL(None)  # the C library this process runs on
        libc.gnu_get_libc_version  # noqa: B018 (glibc's own symbol: present only in glibc)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, -1) == 1

