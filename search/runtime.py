"""Process settings for inference, applied once by an entry point (the CLI, the server, the
benchmarks), never at import.

torch and FAISS each keep an OpenMP pool. They run one after the other in this process (a
query encodes, then searches), so each gets every core this process may use, and no more:
more threads than cores makes a 2-core machine time-slice. torch and FAISS are imported
by the functions that set them, so `cores` costs a caller (the Ray driver) neither.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure(threads: int | None = None) -> dict:
    """Set both thread pools to `threads` (default: every core)."""
    import faiss
    import torch

    threads = threads or cores()
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    return {"threads": threads}


def free_memory(device: torch.device) -> int:
    """Bytes this process could still allocate on `device`: free GPU memory, or the kernel's
    MemAvailable (page cache that can be dropped included) on the CPU; 4 GiB where unknown."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30
