"""A test connector whose commits can be seen from the test process: it logs them to a file.

Registered as connector 'commit_probe' by tests/test_multiproc.py; the
worker processes import this module by name, like any connector module.
"""

from __future__ import annotations

import json
from typing import Any

from stream_dsl.connectors.memory import MemorySource
from stream_dsl.ir.definitions import SourceDef


class ProbeSource(MemorySource):
    """A memory source that appends every commit (offset, keep_from_ms) to the file in option `log`."""

    def commit(self, offset: Any, *, keep_from_ms: int | None = None) -> None:
        with open(self.definition.option("log"), "a") as f:
            f.write(json.dumps([offset, keep_from_ms]) + "\n")


def make_source(definition: SourceDef) -> ProbeSource:
    return ProbeSource(definition)
