"""What the catalog knows about a source or sink, and the window and emit specs: the leaves plan nodes refer to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

from stream_dsl.errors import PlanError
from stream_dsl.ir.column_names import is_reserved, reserved_message
from stream_dsl.ir.expr import format_duration_ms
from stream_dsl.ir.types import Schema


@dataclass(frozen=True, slots=True)
class Watermark:
    """`WATERMARK FOR column AS column - delay`: max event time seen minus `delay_ms`."""

    column: str
    delay_ms: int


@dataclass(frozen=True, slots=True)
class SourceDef:
    """A named stream or table as the catalog knows it.

    `kind` is 'stream' (unbounded unless its connector says otherwise) or
    'table' (static, read once). `options` are the WITH options, sorted.
    """

    name: str
    kind: str
    schema: Schema
    options: tuple[tuple[str, str], ...] = ()
    watermark: Watermark | None = None

    def __post_init__(self) -> None:
        for name in self.schema.names:
            if is_reserved(name):
                raise PlanError(f"source '{self.name}': " + reserved_message(name))

    @overload
    def option(self, key: str) -> str | None: ...
    @overload
    def option(self, key: str, default: str) -> str: ...
    @overload
    def option(self, key: str, default: str | None) -> str | None: ...

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)


@dataclass(frozen=True, slots=True)
class SinkDef:
    name: str
    options: tuple[tuple[str, str], ...] = ()

    @overload
    def option(self, key: str) -> str | None: ...
    @overload
    def option(self, key: str, default: str) -> str: ...
    @overload
    def option(self, key: str, default: str | None) -> str | None: ...

    def option(self, key: str, default: str | None = None) -> str | None:
        return dict(self.options).get(key, default)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """An event-time window over `time_column` (TIMESTAMP). Durations in milliseconds.

    TUMBLE: size; HOP: size and slide; SESSION: gap (stored in `size_ms`).
    Windows are [start, end): start inclusive, end exclusive.
    """

    kind: str
    time_column: str
    size_ms: int
    slide_ms: int | None = None
    watermarked: bool = True  # False: `time_column` is not the watermark's, so only the end of input closes it

    def __post_init__(self) -> None:
        if self.kind not in ("tumble", "hop", "session"):
            raise PlanError(f"unknown window kind '{self.kind}'")
        if self.size_ms <= 0 or (self.slide_ms is not None and self.slide_ms <= 0):
            raise PlanError("window sizes must be positive")
        if (self.kind == "hop") != (self.slide_ms is not None):
            raise PlanError("a HOP window needs a slide, and only a HOP window has one")

    def __str__(self) -> str:
        if self.kind == "hop":
            assert self.slide_ms is not None  # __post_init__: a HOP has a slide
            return f"HOP({self.time_column}, {format_duration_ms(self.slide_ms)}, {format_duration_ms(self.size_ms)})"
        return f"{self.kind.upper()}({self.time_column}, {format_duration_ms(self.size_ms)})"


# Emit modes of an aggregate: 'final' emits each window's row once, when it
# closes; 'changes' emits per batch the new value of every group it changed.
EMIT_FINAL = "final"
EMIT_CHANGES = "changes"
