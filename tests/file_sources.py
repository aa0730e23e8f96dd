"""The files sources a test's queries open, to read what each did (its pushed reads)."""

from __future__ import annotations

import pytest

from stream_dsl.connectors import files


def opened_file_sources(monkeypatch: pytest.MonkeyPatch) -> list[files.FileSource]:
    """A list that every FileSource made from now on (until the test ends) is appended to."""
    opened: list[files.FileSource] = []
    init = files.FileSource.__init__

    def remember(self: files.FileSource, definition) -> None:
        init(self, definition)
        opened.append(self)

    monkeypatch.setattr(files.FileSource, "__init__", remember)
    return opened
