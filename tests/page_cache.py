"""fsync without the flush, for the test process and the driver scripts it starts (tests/recovery_script.py,
tests/kafka_recovery_script.py).

The checkpoint store, the files sink and atomic writes fsync each file and
directory (a checkpoint per batch on BSP: ~1800 fsyncs, ~18% of the BSP
recovery tests' time on a shared disk). What the tests prove, exact output
after killed processes and damaged files, is in the page cache either way:
only a machine crash needs the flush, and no test makes one. The
descriptor is still checked: a closed or bad one raises as fsync would.
Worker processes and the other programs the tests start (the CLI, the
signal tests' scripts) keep real fsyncs. STREAM_DSL_TESTS_FSYNC=1 keeps
them everywhere.
"""

from __future__ import annotations

import os

SKIP_FLUSH_ENV = "STREAM_DSL_TESTS_SKIP_FLUSH"  # set by conftest for the driver scripts the tests start
_real_fsync = os.fsync


def _fsync_checked_only(fd: int) -> None:
    os.fstat(fd)


def skip_flush() -> None:
    """From now on os.fsync checks the descriptor only (unless STREAM_DSL_TESTS_FSYNC=1)."""
    if os.environ.get("STREAM_DSL_TESTS_FSYNC") != "1":
        os.fsync = _fsync_checked_only


def skip_flush_if_asked() -> None:
    """In a driver script: skip the flush when the test that started it does."""
    if os.environ.get(SKIP_FLUSH_ENV) == "1":
        skip_flush()


def restore() -> None:
    os.fsync = _real_fsync
