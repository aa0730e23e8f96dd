"""A worker process keeps the memory it frees for its next batch: glibc's malloc otherwise hands it back.

Every batch's numpy and Python buffers larger than glibc's thresholds (a
few hundred kB: the generator's hashes of 100k events, 800 kB each) are
mapped fresh from the kernel and returned when freed, so each batch
page-faults them in again, zero-filled: measured on the YSB generator,
about 1,000 minor faults and 2.2 of 4.9 ms of CPU per 100k-event part
(1.2 of 2.7 ms at 50k), in kernel time. With the heap allowed to keep up to
TRIM_BYTES free and buffers below MMAP_BYTES taken from it, the part costs
1.8 ms (1.0 ms at 50k) and the process's peak RSS does not grow. polars'
own buffers come from its allocator (jemalloc), which already keeps them.

Only worker processes: the engine does not change the allocator of the
program that embeds it. `STREAM_DSL_MALLOC=default` leaves glibc as it is.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_BYTES = 32 << 20  # buffers below this come from the heap (glibc's own ceiling for its moving threshold)
TRIM_BYTES = 64 << 20  # the heap keeps up to this much freed memory at its top
ENV = "STREAM_DSL_MALLOC"


def keep_freed_memory() -> bool:
    """Set the thresholds (glibc only); whether they were set."""
    if os.environ.get(ENV) == "default" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES))
