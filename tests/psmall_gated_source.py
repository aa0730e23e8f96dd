"""A recording source (tests/recording_source.py) that reads batch i only once batch i - 1 reached the sink.

The sink (in the test's process) logs its writes to the script's log; the
source (in whichever process reads it) waits for "write i - 1" there before
it returns batch i. An executor that kept a group's outputs back until the
group's end would leave the source waiting: after GATE_S it gives up, logs
"gave up" and goes on, so the test fails instead of hanging.
"""

from __future__ import annotations

import time
from typing import Any

from stream_dsl.connectors.base import SourceBatch

import recording_source

NAME = "gated_recording"
GATE_S = 60.0  # a guard against a hang, not a time limit the test measures


class GatedSource(recording_source.RecordingSource):
    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False) -> SourceBatch:
        if self.position > 0:
            _await_write(self.log, self.position - 1)
        return super().next_batch(batch_interval_ms, realtime=realtime)


def _await_write(log: str, batch_id: int) -> None:
    deadline = time.monotonic() + GATE_S
    while ("write", batch_id) not in _events(log):
        if time.monotonic() > deadline:
            recording_source.record(log, "gave up", batch_id)
            return
        time.sleep(0.002)


def _events(log: str) -> list[tuple[str, Any]]:
    from pathlib import Path

    return recording_source.events(Path(log))


def make_source(definition: Any) -> GatedSource:
    return GatedSource(definition)
