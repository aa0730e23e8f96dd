"""Checkpoints need no filesystem shared with the workers (issue 18): only the driver touches checkpoint_dir.

Workers send their state parts with their group reports and their
sources' batch ends with their outputs; the driver writes both, and hands
a restarted worker the state parts and logged batch ends it needs. The
test records every message of a recovery run over the pipes transport:
no message to a worker names the checkpoint directory, state parts and
batch ends travel as messages, and the output is still exact after a
stop and a restart from the checkpoint (test_recovery's YSB query and
reference result).
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from executor.multiproc.messages import Report, Setup
from executor.multiproc.runtime import MultiprocessTransport
from executor.multiproc.transports import TRANSPORTS, register_transport
from executor.multiproc.worker import OutputBatch
from test_recovery import assert_exact, finish, reference_output, start, stop_midway

SENT: list[Any] = []  # every message the driver sent a worker, in this test process
RECEIVED: list[Any] = []  # every message the driver received


class RecordingTransport:
    """The pipes transport, with every message to and from the workers kept in SENT and RECEIVED."""

    def __init__(self, workers: int) -> None:
        self.inner = MultiprocessTransport(workers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def send(self, worker: int, message: Any) -> None:
        SENT.append(message)
        self.inner.send(worker, message)

    def receive(self, timeout: float) -> Any | None:
        message = self.inner.receive(timeout)
        if message is not None:
            RECEIVED.append(message)
        return message

    def shutdown(self, timeout: float = 2.0, message: Any = None) -> None:
        if message is not None:
            SENT.append(message)
        self.inner.shutdown(timeout, message)


@pytest.fixture
def recording():
    SENT.clear()
    RECEIVED.clear()
    register_transport("recording", RecordingTransport)
    yield
    TRANSPORTS.pop("recording", None)
    SENT.clear()
    RECEIVED.clear()


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
def test_workers_never_see_the_checkpoint_dir_and_a_restart_is_exact(tmp_path, recording, executor):
    ckpt = tmp_path / "ckpt"
    expected = reference_output()
    stop_midway(start(tmp_path, executor=executor, group_size=5, transport="recording"), ckpt, 2)
    first_run = len(SENT)
    handle = start(tmp_path, executor=executor, group_size=5, transport="recording")
    finish(handle)
    assert handle.restored_checkpoint is not None
    assert_exact(tmp_path / "out", expected)

    for message in SENT:
        assert str(ckpt).encode() not in pickle.dumps(message), f"a worker was told the checkpoint_dir: {message!r}"
    parts = [m.checkpoint for m in RECEIVED if isinstance(m, Report) and m.checkpoint is not None]
    assert parts and any(p.data for p in parts), "no state part travelled with a report"
    assert all(p.sha256 is None for p in parts)  # the driver checksums what it writes
    logged = [(entry.stage, entry.batch) for m in RECEIVED if isinstance(m, OutputBatch) for entry in m.logged]
    assert logged and len(logged) == len(set(logged))  # each batch end once: a replayed batch is not logged again
    restores = [m.restore for m in SENT[first_run:] if isinstance(m, Setup) and m.restore is not None]
    assert restores and any(r.data for r in restores), "the restarted workers got no state part"
    assert all(m.logged is not None for m in SENT if isinstance(m, Setup))
