"""One error hierarchy for every user mistake.

Errors that point at query text (`ParseError`, `BindError`) carry the
1-based `line` and `column` and render the offending line with a caret,
so a user sees at once where the problem is.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable

from stream_dsl.secrets import mask


@dataclass(frozen=True, slots=True)
class Span:
    """A position in query text: 1-based line and column, plus where it ends."""

    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None


class DSLError(Exception):
    """Base of every error stream-dsl raises for a user mistake.

    Its text never shows a password: URLs with one are masked (`stream_dsl.secrets`).
    """

    def __str__(self) -> str:
        return mask(super().__str__())


class PositionedError(DSLError):
    """An error about a place in the query text."""

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        source: str | None = None,
        span: Span | None = None,
    ) -> None:
        if span is not None and line is None:
            line, column = span.line, span.column
        self.message = message
        self.line = line
        self.column = column
        self.source = source
        super().__init__(self._render())

    def with_source(self, source: str) -> "PositionedError":
        """Attach the query text so the message shows the line and a caret."""
        if self.source is None:
            self.source = source
            self.args = (self._render(),)
        return self

    def _render(self) -> str:
        if self.line is None:
            return self.message
        head = f"line {self.line}, col {self.column}: {self.message}"
        if not self.source:
            return head
        lines = self.source.split("\n")
        if not 1 <= self.line <= len(lines):
            return head
        text = lines[self.line - 1].expandtabs(1)
        caret = " " * max((self.column or 1) - 1, 0) + "^"
        return f"{head}\n  {text}\n  {caret}"

    def __str__(self) -> str:
        return mask(self.args[0] if self.args else self.message)


class ParseError(PositionedError):
    """The text is not a valid statement."""


class BindError(PositionedError):
    """The statement parses but names or types do not resolve."""


class CatalogError(DSLError):
    """A DDL statement conflicts with the catalog (duplicate or missing name)."""


class ConnectorError(DSLError):
    """A source or sink is misconfigured or unavailable."""


class ExecutionError(DSLError):
    """A query failed while running; the message names the operator."""


class PlanError(DSLError):
    """A plan cannot be built or run as asked (for example, it could never emit)."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest known names, or ''."""
    known = list(dict.fromkeys(known))
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if not close:
        return ""
    names = " or ".join(f"'{lowered[c]}'" for c in close)
    return f" (did you mean {names}?)"


class CheckpointError(DSLError):
    """A checkpoint_dir cannot be used as asked: in use by another query, of another query, or unreadable."""
