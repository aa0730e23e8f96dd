"""How the REPL shows results: rich tables, csv, JSON lines, and a running query's status line.

Tables stay readable whatever the data: long cells end in '…' instead of
wrapping, a table wider than the terminal shows its first and last columns
and says how many it hid, and a long result shows its first and last rows
around a '…' row. Every function here is pure (frame in, renderable or
text out), so what a user sees is tested without a terminal.

>>> import polars as pl
>>> from rich.console import Console
>>> console = Console(width=60, color_system=None)
>>> with console.capture() as cap:
...     console.print(frame_view(pl.DataFrame({"id": [1, 2], "name": ["ann", None]})))
>>> print(cap.get().rstrip())
╭────────┬────────╮
│     id │ name   │
│ BIGINT │ STRING │
├────────┼────────┤
│      1 │ ann    │
│      2 │ null   │
╰────────┴────────╯
2 rows
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any, Sequence

import polars as pl
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from stream_dsl.secrets import escape_frame, escape_json_text
from stream_dsl.ir.types import type_from_polars

__all__ = [
    "frame_table",
    "frame_caption",
    "frame_view",
    "fit_widths",
    "frame_csv",
    "frame_json",
    "cell_text",
    "visible_columns",
    "QueryStatus",
    "query_status",
    "status_text",
    "live_view",
    "FORMATS",
]

FORMATS = ("table", "csv", "json")
MAX_CELL = 40  # characters of one cell before it is cut with '…'
_MIN_COLUMN = 8  # characters a shown column keeps (fewer if it needs fewer)


# ---------------------------------------------------------------- cells


def cell_text(value: Any) -> Text:
    """One value as it reads in a table: null dimmed, timestamps without trailing zeros, one line."""
    if value is None:
        return Text("null", style="dim")
    if isinstance(value, bool):
        return Text("true" if value else "false")
    if isinstance(value, float):
        return Text(f"{value:.10g}")
    if isinstance(value, dt.datetime):
        spec = "milliseconds" if value.microsecond else "seconds"
        return Text(value.isoformat(sep=" ", timespec=spec))
    if isinstance(value, (list, pl.Series)):  # a list (ARRAY_AGG): as DuckDB prints one, [1, NULL, 3]
        items = value.to_list() if isinstance(value, pl.Series) else value
        return Text("[" + ", ".join("NULL" if v is None else cell_text(v).plain for v in items) + "]")
    return Text(str(value).replace("\r\n", "↵").replace("\n", "↵"))


def _type_name(dtype: pl.DataType) -> str:
    try:
        return type_from_polars(dtype).value
    except (TypeError, ValueError):
        return str(dtype)


# ---------------------------------------------------------------- tables

_EDGE, _PER_COLUMN = 1, 3  # a rounded table's left border; a column's padding and right border


def visible_columns(widths: Sequence[int], width: int) -> tuple[int, int]:
    """How many columns to show on the left and on the right of a '…' column within `width`.

    `widths` are the columns' natural widths; each shown column gets at
    least a few characters (or its natural width when smaller). When all
    fit, the right count is 0.

    >>> visible_columns([5, 5], 80)
    (2, 0)
    >>> visible_columns([8] * 20, 60)
    (3, 2)
    """
    need = [min(w, _MIN_COLUMN) + _PER_COLUMN for w in widths]
    if sum(need) + _EDGE <= width:
        return len(widths), 0
    budget = width - _EDGE - (1 + _PER_COLUMN)  # room left beside the '…' column
    left = right = 0
    while left + right < len(widths):
        from_left = left <= right
        take = need[left] if from_left else need[len(widths) - 1 - right]
        if take > budget:
            break
        budget -= take
        left, right = (left + 1, right) if from_left else (left, right + 1)
    return max(left, 1), right


def fit_widths(natural: Sequence[int], room: int) -> list[int]:
    """Column widths within `room` characters: the widest columns give way first.

    >>> fit_widths([40, 19, 5], 50)
    [26, 19, 5]
    """
    widths = list(natural)
    floor = [min(w, _MIN_COLUMN) for w in widths]
    while sum(widths) > room:
        widest = max(range(len(widths)), key=lambda i: widths[i] - floor[i])
        if widths[widest] <= floor[widest]:
            break
        widths[widest] -= 1
    return widths


def frame_table(
    frame: pl.DataFrame,
    *,
    max_rows: int = 40,
    width: int | None = None,
    max_cell: int = MAX_CELL,
    title: str | None = None,
    types: bool = True,
) -> Table:
    """A rich table of `frame`: names over SQL types, at most `max_rows` rows (first and last halves).

    Within `width` (unlimited when None) the widest columns are cut first,
    and columns that cannot fit are replaced by one '…' column.
    """
    rows, cut = _rows(frame, max_rows)
    cells = [[cell_text(v) for v in row] for row in rows]
    type_names = [_type_name(t) for t in frame.dtypes]
    natural = [
        min(max([len(name), len(type_names[i]) if types else 0] + [c[i].cell_len for c in cells]), max_cell)
        for i, name in enumerate(frame.columns)
    ]
    left, right = visible_columns(natural, width) if width else (frame.width, 0)
    shown = list(range(left)) + list(range(frame.width - right, frame.width))
    if width:
        room = width - _EDGE - _PER_COLUMN * (len(shown) + (1 if right else 0)) - (1 if right else 0)
        sizes = dict(zip(shown, fit_widths([natural[i] for i in shown], room)))
    else:
        sizes = {i: natural[i] for i in shown}
    table = Table(box=box.ROUNDED, title=title, title_justify="left", header_style="bold")
    for i in shown:
        header = Text(frame.columns[i], style="bold")
        if types:
            header.append("\n" + type_names[i], style="dim")
        table.add_column(
            header,
            justify="right" if frame.dtypes[i].is_numeric() else "left",
            no_wrap=True,
            overflow="ellipsis",
            width=sizes[i],
        )
        if right and i == left - 1:
            table.add_column(Text("…"), justify="center", no_wrap=True, width=1)
    gap = [Text("…", style="dim")] if right else []
    for position, row in enumerate(cells):
        if cut is not None and position == cut:
            table.add_row(*[Text("…", style="dim")] * (len(shown) + len(gap)))
        table.add_row(*[row[i] for i in shown[:left]], *gap, *[row[i] for i in shown[left:]])
    return table


def frame_caption(
    frame: pl.DataFrame, *, max_rows: int = 40, shown_columns: int | None = None, total_rows: int | None = None
) -> str:
    """'N rows', and what the table leaves out: rows beyond `max_rows`, hidden columns."""
    total = frame.height if total_rows is None else total_rows
    text = f"{total:,} row{'' if total == 1 else 's'}"
    shown_rows = frame.height if max_rows < 0 else min(frame.height, max_rows)
    if shown_rows < total:
        text += f" ({shown_rows:,} shown)"
    hidden = frame.width - (frame.width if shown_columns is None else shown_columns)
    if hidden > 0:
        text += f", {hidden} column{'' if hidden == 1 else 's'} hidden"
    return text


def frame_view(
    frame: pl.DataFrame,
    *,
    max_rows: int = 40,
    width: int | None = None,
    total_rows: int | None = None,
    title: str | None = None,
    types: bool = True,
) -> RenderableType:
    """The table and, under it, its caption (control characters in text escaped: data cannot drive the terminal)."""
    frame = escape_frame(frame)
    table = frame_table(frame, max_rows=max_rows, width=width, title=title, types=types)
    gap_column = any(isinstance(c.header, Text) and c.header.plain == "…" for c in table.columns)
    shown = len(table.columns) - (1 if gap_column else 0)
    caption = frame_caption(frame, max_rows=max_rows, shown_columns=shown, total_rows=total_rows)
    return Group(table, Text(caption, style="dim"))


def _rows(frame: pl.DataFrame, max_rows: int) -> tuple[list[tuple], int | None]:
    """The rows to show, and where the '…' row goes (None: all rows shown)."""
    if max_rows < 0 or frame.height <= max_rows:
        return frame.rows(), None
    head = (max_rows + 1) // 2
    tail = max_rows - head
    rows = frame.head(head).rows() + (frame.tail(tail).rows() if tail else [])
    return rows, head


# ---------------------------------------------------------------- text formats


def frame_csv(frame: pl.DataFrame, *, header: bool = True) -> str:
    """CSV with a header line (timestamps as ISO-8601; control characters in text escaped)."""
    return escape_frame(_lists_as_text(frame)).write_csv(include_header=header)


def _lists_as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """List columns (CSV has no nested values) as their table text, `[1, NULL, 3]`."""
    lists = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    if not lists:
        return frame
    as_text = [pl.Series(c, [None if v is None else cell_text(v).plain for v in frame[c].to_list()]) for c in lists]
    return frame.with_columns(as_text)


def frame_json(frame: pl.DataFrame) -> str:
    """JSON Lines: one object per row."""
    buffer = io.BytesIO()
    frame.write_ndjson(buffer)
    return escape_json_text(buffer.getvalue().decode())


# ---------------------------------------------------------------- a running query


@dataclass(frozen=True, slots=True)
class QueryStatus:
    """What the status line of a running query says, from its progress() reports."""

    state: str  # 'running', 'stopped', 'finished' or 'failed'
    batches: int
    rows_in: int
    rows_out: int
    rows_per_second: float
    watermark: Any
    latency_ms: float | None
    late_rows: int
    dead_letters: int
    elapsed_s: float
    recoveries: int = 0  # lost workers replaced from a checkpoint
    lag_ms: float | None = None  # a paced source: how far event time trails the wall clock
    result_rows: int | None = None  # a changelog's current result (the table shown): its rows


def query_status(
    progress: Sequence[dict[str, Any]],
    elapsed_s: float,
    state: str = "running",
    totals: dict[str, int] | None = None,
    recoveries: int = 0,
) -> QueryStatus:
    """Totals over every batch (`totals`, else summed over `progress`); latency: the mean of the last ten batches.

    >>> query_status([{"rows_in": 10, "rows_out": 1, "latency_ms": 2.0, "watermark": None}], 2.0).rows_per_second
    5.0
    """

    def total(key: str) -> int:
        if totals is not None:
            return int(totals.get(key) or 0)
        return sum(int(p.get(key) or 0) for p in progress)

    recent = [float(p["latency_ms"]) for p in progress[-10:] if p.get("latency_ms") is not None]
    rows_in = total("rows_in")
    return QueryStatus(
        state=state,
        batches=len(progress) if totals is None else int(totals.get("batches") or 0),
        rows_in=rows_in,
        rows_out=total("rows_out"),
        rows_per_second=rows_in / elapsed_s if elapsed_s > 0 else 0.0,
        watermark=progress[-1].get("watermark") if progress else None,
        latency_ms=sum(recent) / len(recent) if recent else None,
        late_rows=total("late_rows"),
        dead_letters=total("dead_letters"),
        elapsed_s=elapsed_s,
        recoveries=recoveries,
        lag_ms=progress[-1].get("event_lag_ms") if progress else None,
    )


_STATE_STYLE = {"running": "green", "stopped": "yellow", "finished": "blue", "failed": "red"}


def status_text(status: QueryStatus, *, hint: bool = True) -> Text:
    """One line: state, batches, rows in and per second, rows out, watermark, latency, late and dead rows."""
    text = Text("● ", style=_STATE_STYLE.get(status.state, ""))
    text.append(status.state, style="bold")
    parts = [
        f"{status.batches:,} batch{'es' if status.batches != 1 else ''}",
        f"{status.rows_in:,} rows in ({status.rows_per_second:,.0f} rows/s)",
        f"{status.rows_out:,} rows out"
        if status.result_rows is None
        else f"{status.rows_out:,} changes out, {status.result_rows:,} rows in the result",
        f"watermark {_watermark_text(status.watermark)}",
        f"latency {status.latency_ms:,.1f} ms" if status.latency_ms is not None else "latency -",
    ]
    if status.lag_ms is not None:
        parts.append(f"lag {status.lag_ms:,.0f} ms")
    if status.late_rows:
        parts.append(f"{status.late_rows:,} late rows")
    if status.dead_letters:
        parts.append(f"{status.dead_letters:,} dead letters")
    if status.recoveries:
        parts.append(f"{status.recoveries} lost worker{'s' if status.recoveries > 1 else ''} recovered")
    parts.append(f"{status.elapsed_s:,.1f}s")
    text.append(" · " + " · ".join(parts))
    if hint and status.state == "running":
        text.append("  (Ctrl-C stops)", style="dim")
    return text


def _watermark_text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return cell_text(value).plain
    return str(value)


def live_view(
    frame: pl.DataFrame | None, status: QueryStatus, *, max_rows: int, width: int | None, total_rows: int | None = None
) -> RenderableType:
    """The live display of a continuous SELECT: the latest results over the status line."""
    if frame is None:
        return status_text(status)
    return Group(frame_view(frame, max_rows=max_rows, width=width, total_rows=total_rows), status_text(status))
