"""Process settings for inference, applied once by an entry point (the CLI, the server, the
benchmarks), never at import.

torch and FAISS each keep an OpenMP pool. They run one after the other in this process (a
query encodes, then searches), so each gets every core this process may use, and no more:
more threads than cores makes a 2-core machine time-slice. Each pool is set by the package
that owns its library (`models`, `vectors`), imported here only when `configure` runs, so
`cores` costs a caller (the Ray driver) neither.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure(threads: int | None = None, *, searches: bool = True, models: bool = True) -> dict:
    """Set both thread pools to `threads` (default: every core); `searches` False: torch's
    only, in a process that never searches the vector index (a Ray worker), which then never
    loads FAISS; `models` False: FAISS's only, in a process that has not loaded torch (yet)."""
    threads = threads or cores()
    if models:
        from .models import loading

        loading.set_threads(threads)
    if searches:
        from .store import vectors

        vectors.set_threads(threads)
    return {"threads": threads}


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
