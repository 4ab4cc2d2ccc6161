"""Process settings for inference, applied once by an entry point (the CLI, the server, the
benchmarks), never at import.

- Threads: torch and FAISS each keep an OpenMP pool. They run one after the other in this
  process (a query encodes, then searches), so each gets every core this process may use,
  and no more: more threads than cores makes 2-core machines time-slice.
- Freed memory stays in the process (glibc only): beam search and the encoder free and
  allocate tensors of tens of MB at every step, and glibc returns such blocks to the kernel,
  so each new one costs page faults. Keeping them measured 9 % off caption decoding at
  OPT-2.7b widths on 2 cores (BENCHMARKS.md). The heap then stays at its peak size.
"""

from __future__ import annotations

import ctypes
import os

import faiss
import torch

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc mallopt parameters


def cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure(threads: int | None = None) -> dict:
    """Set both thread pools to `threads` (default: every core) and keep freed memory."""
    threads = threads or cores()
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    return {"threads": threads, "keeps_freed_memory": _keep_freed_memory()}


def _keep_freed_memory() -> bool:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
