"""Worker processes keep the memory they free (`executor/multiproc/allocator.py`).

A batch's large numpy buffers used to be mapped fresh from the kernel and
page-faulted in again every batch (about 1,000 minor faults and 2 ms of
kernel CPU per 100k generated events). Counted in a fresh interpreter (the
test process's allocator stays as it is): allocating a batch's eight 800 kB
buffers again faults their pages in every time by default, and not once with
the thresholds set. A fault count, not a time.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from executor.multiproc import allocator

PROBE = """
import resource, sys
import numpy as np
from executor.multiproc.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def batch():  # eight 800 kB buffers alive at once, as a 100k-event part's hashes are
    return [np.ones(100_000, dtype=np.uint64) for _ in range(8)]
for _ in range(3):
    batch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    batch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt: Linux only")


def faults(mode: str) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop(allocator.ENV, None)
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, check=True)
    return int(out.stdout.strip())


def test_a_freed_buffer_is_reused_without_page_faults():
    assert faults("default") >= 20 * 500  # ~1,560 pages a batch, handed back to the kernel when freed
    assert faults("keep") < 20  # the same pages again


def test_the_worker_process_sets_it_up_before_serving_queries():
    from executor.multiproc import worker_process

    assert worker_process.keep_freed_memory is allocator.keep_freed_memory
