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
    `split` (index, count): a stream read as `count` parts, this one part
    `index` (the lowering's choice, from the option `splits`; see `splits_for`).
    """

    name: str
    kind: str
    schema: Schema
    options: tuple[tuple[str, str], ...] = ()
    watermark: Watermark | None = None
    split: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name in self.schema.names:
            if is_reserved(name):
                raise PlanError(f"source '{self.name}': " + reserved_message(name))
        splits = self.option("splits")
        if splits is not None:
            if self.kind != "stream":
                raise PlanError(f"table '{self.name}': option splits is for streams (a table is read once, whole)")
            if splits.strip().lower() != "workers" and not (splits.strip().isdigit() and int(splits) >= 1):
                raise PlanError(f"stream '{self.name}': option splits must be a positive integer or 'workers'")

    def splits_for(self, workers: int) -> int:
        """How many parts the stream is read as, each by its own map task per batch (option `splits`:
        a number, or 'workers' for one per worker; 1 without it)."""
        splits = (self.option("splits") or "1").strip().lower()
        return max(1, workers) if splits == "workers" else int(splits)

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

    TUMBLE: size; HOP: size and slide; CUMULATE: max size and step (in
    `slide_ms`; the max size is a multiple of it); SESSION: gap (stored in `size_ms`).
    Windows are [start, end): start inclusive, end exclusive.
    """

    kind: str
    time_column: str
    size_ms: int
    slide_ms: int | None = None
    watermarked: bool = True  # False: `time_column` is not the watermark's, so only the end of input closes it

    def __post_init__(self) -> None:
        if self.kind not in ("tumble", "hop", "cumulate", "session"):
            raise PlanError(f"unknown window kind '{self.kind}'")
        if self.size_ms <= 0 or (self.slide_ms is not None and self.slide_ms <= 0):
            raise PlanError("window sizes must be positive")
        if (self.kind in ("hop", "cumulate")) != (self.slide_ms is not None):
            raise PlanError("a HOP or CUMULATE window needs a slide (step), and only they have one")
        if self.kind == "cumulate" and self.size_ms % (self.slide_ms or 1):
            raise PlanError("a CUMULATE window's max size must be a multiple of its step")

    def __str__(self) -> str:
        if self.kind == "hop":
            assert self.slide_ms is not None  # __post_init__: a HOP has a slide
            return f"HOP({self.time_column}, {format_duration_ms(self.slide_ms)}, {format_duration_ms(self.size_ms)})"
        if self.kind == "cumulate":
            assert self.slide_ms is not None  # __post_init__: a CUMULATE has a step
            step, size = format_duration_ms(self.slide_ms), format_duration_ms(self.size_ms)
            return f"CUMULATE({self.time_column}, {step}, {size})"
        return f"{self.kind.upper()}({self.time_column}, {format_duration_ms(self.size_ms)})"


# Emit modes of an aggregate: 'final' emits each window's row once, when it
# closes; 'changes' emits per batch the new value of every group it changed.
EMIT_FINAL = "final"
EMIT_CHANGES = "changes"
