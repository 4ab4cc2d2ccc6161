"""Process settings for inference, applied once by an entry point (the CLI, the server, the
benchmarks), never at import.

torch and FAISS each keep an OpenMP pool. They run one after the other in this process (a
query encodes, then searches), so each gets every core this process may use, and no more:
more threads than cores makes a 2-core machine time-slice. Each pool is set by the package
that owns its library (`models`, `vectors`), imported here only when `configure` runs, so
`cores` costs a caller (the Ray driver) neither.
"""

from __future__ import annotations

import os


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
