"""Aggregate state in a Python dict, for micro-batches too small for a polars query to pay off.

A polars query has a fixed cost whatever its input: planning, and handing
the work to polars' thread pool and back, 100 to 300 us on this machine
for the one-query merge of `state.AggregateState`, and more when the cores
are busy. Folding a 50-row batch into a dict of partial states costs about
30 us. `SmallAggregate` does exactly what `AggregateState`'s fused step does
(see `state.py`: windows, late rows, the merge, changes or final emission)
for the column types where Python's values, arithmetic and comparisons are
polars' own: keys and MIN/MAX over integers, strings, booleans and
millisecond timestamps; SUM and AVG over integers (an Int64 SUM out of
range raises as `state.checked_sum` does; an AVG is exact while its sum stays below 2^53,
where float addition of integers is exact in any order); COUNT over
anything. No floats: NaN and -0.0 group and compare differently in Python.

`AggregateState` starts a fused aggregate here when its first rows have
such types, and moves the state to polars for good (`frame()`, the same
columns as its own state) the first time a batch has more than
`MAX_BATCH_ROWS` rows or the state more than `MAX_GROUPS` groups.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from executor.state.rows import RowsPart
from executor.state.windows import Windows, is_closed, watermark_or_min
from optimizer.physical.stages import TIME_COLUMN, AggregateOp
from stream_dsl.ir.aggregates_more import is_more
from stream_dsl.ir.column_names import PARTIAL_ROWS, WINDOW_END, WINDOW_START
from stream_dsl.ir.partial_state import sum_type
from stream_dsl.ir.to_polars import OverflowFailure

MAX_BATCH_ROWS = 256  # above this, polars' query is cheaper than the Python loop
MAX_GROUPS = 512  # `frame()` builds the whole state once per batch (retention): keep that small
WS, WE = WINDOW_START, WINDOW_END

_INTS = (pl.Int64, pl.Int32)
_PLAIN = _INTS + (pl.String, pl.Boolean, pl.Datetime("ms"), pl.Null)  # keys, MIN and MAX
_SUMMABLE = _INTS + (pl.Null,)


def _wrap64(value: int) -> int:
    """An integer as Int64 arithmetic leaves it (polars' SUM wraps around)."""
    return (value + 2**63) % 2**64 - 2**63


def _plain(dtype: pl.DataType, allowed: tuple) -> bool:
    return any(dtype == a for a in allowed)


def supported(op: AggregateOp, schema: pl.Schema) -> bool:
    """Whether `op`'s step over rows of `schema` can run here with polars' exact semantics."""
    window = op.window
    if window is not None and window.kind == "session":
        return False
    if any(is_more(a.func) for a in op.aggs):  # list and variance states live in polars only
        return False
    if any(a.func == "count" and a.distinct for a in op.aggs) or any(a.udf is not None for a in op.aggs):
        return False  # an aggregate UDF's state is pickled bytes: the polars state keeps it
    keys = list(op.keys) + ([WS, WE] if op.final and window is not None else [])
    if window is not None and not op.final:
        time = schema.get(TIME_COLUMN)
        if not isinstance(time, pl.Datetime) or time.time_zone is not None:
            return False
    for key in keys:
        if key not in schema or not _plain(schema[key], _PLAIN):
            return False
    for i, spec in enumerate(op.aggs):
        if op.final:
            columns = spec.state_columns(i)
            if any(c not in schema for c in columns) or PARTIAL_ROWS not in schema:
                return False
            if spec.func in ("sum", "avg", "count") and not all(_plain(schema[c], (pl.Int64,)) for c in columns):
                return False  # an AVG's or a DOUBLE SUM's partial sum is a float
            if spec.func in ("min", "max") and not _same_plain(schema[columns[0]], spec.dtype.polars):
                return False
        elif spec.arg is not None:
            if spec.arg not in schema:
                return False
            dtype = schema[spec.arg]
            if spec.func in ("sum", "avg") and not _plain(dtype, _SUMMABLE):
                return False
            if spec.func in ("min", "max") and not _same_plain(dtype, spec.dtype.polars):
                return False
    return True


def _same_plain(dtype: pl.DataType, target: pl.DataType) -> bool:
    """MIN/MAX of `dtype` cast to `target` keeps every value as Python sees it."""
    if not _plain(dtype, _PLAIN) or not _plain(target, _PLAIN):
        return False
    return dtype == target or dtype == pl.Null or (_plain(dtype, _INTS) and _plain(target, _INTS))


class SmallAggregate:
    """One partition's aggregate state as {group: partial state list} (see the module doc).

    A partial state list holds PARTIAL_ROWS then each aggregate's state
    columns (`AggSpec.state_columns`): a count; a sum and a non-NULL count;
    a MIN or MAX (None until a non-NULL value). Window bounds are epoch ms
    at the end of the group key, as in the polars state.
    """

    def __init__(self, op: AggregateOp, schema: pl.Schema) -> None:
        self.op = op
        self.schema = schema
        self.keys = list(op.keys)
        self.windowed = op.window is not None
        self._windows = Windows.of(op.window) if op.window is not None else None
        self._columns, self._dtypes = list(schema.names()), list(schema.dtypes())  # `fits`: no Schema per batch
        self.table: dict[tuple, list] = {}
        self._frame: pl.DataFrame | None = None
        self._empty = pl.DataFrame(schema=op.output.to_polars())
        self._key_types = [schema[k] for k in self.keys]
        slots = []
        for i, spec in enumerate(op.aggs):
            slots.append((spec.func, spec.arg, 1 + sum(len(a.state_columns(j)) for j, a in enumerate(op.aggs[:i]))))
        self._slots = slots
        self._width = 1 + sum(len(a.state_columns(i)) for i, a in enumerate(op.aggs))
        self._schemas()

    @property
    def groups(self) -> int:
        return len(self.table)

    def fits(self, rows: pl.DataFrame) -> bool:
        """Whether the next batch still belongs here (an empty batch always does)."""
        if len(self.table) > MAX_GROUPS:
            return False
        return not rows.height or (
            rows.height <= MAX_BATCH_ROWS and rows.columns == self._columns and rows.dtypes == self._dtypes
        )

    # ------------------------------------------------------------ one batch

    def step(
        self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None, as_rows: bool = False
    ) -> tuple[pl.DataFrame | RowsPart, int]:
        """Fold `rows` in and emit, as `AggregateState._step_fused`; returns (output, late rows).

        `as_rows`: a non-empty output as a RowsPart, for a consumer that
        wants Python rows anyway; building the frame was a fifth of a
        reduce task on a micro-batch, and the worker took its rows again.
        """
        late = 0
        changed: dict[tuple, list] = {}
        if rows.height:
            if self.op.final:
                late = self._fold_partials(rows, wm_prev, changed)
            else:
                late = self._fold_rows(rows, wm_prev, changed)
            self._frame = None
            for state in changed.values():
                self._wrap(state)
        if self.op.changelog:
            out = self._output(list(changed.items()), as_rows) if changed else self._empty
            if self.windowed and wm_new is not None:
                self._close(wm_new)
            return out, late
        if wm_new is None:
            return self._empty, late
        closed = self._close(wm_new)
        return (self._output(closed, as_rows) if closed else self._empty), late

    def _fold_rows(self, rows: pl.DataFrame, wm_prev: int | None, changed: dict[tuple, list]) -> int:
        """Raw rows: each row's window(s), late rows counted and dropped, then its values."""
        columns = [rows.get_column(k).to_list() for k in self.keys]
        values = {arg: rows.get_column(arg).to_list() for _, arg, _ in self._slots if arg is not None}
        slots = [(func, values.get(arg) if arg is not None else None, at) for func, arg, at in self._slots]
        keys = list(zip(*columns)) if columns else [()] * rows.height
        window = self.op.window
        if window is None:
            for r, key in enumerate(keys):
                self._add_row(key, r, slots, changed)
            return 0
        times = _epoch_ms(rows.get_column(TIME_COLUMN))
        windows = self._windows
        assert windows is not None  # set whenever op.window is
        cut = windows.late_before(watermark_or_min(wm_prev))  # a time below it is late (`Windows.is_late`)
        assert cut is not None  # None only without a watermark, and watermark_or_min gives one
        if window.kind == "tumble":
            late, bounds = 0, windows.bounds
            for r, (key, t) in enumerate(zip(keys, times)):
                if t is None or t < cut:
                    late += 1
                    continue
                self._add_row(key + bounds(t), r, slots, changed)
            return late
        for r, start, end in windows.open_windows_of(times, wm_prev):  # a late row still goes into the open ones
            self._add_row(keys[r] + (start, end), r, slots, changed)
        return sum(1 for t in times if t is None or t < cut)  # late: any of its windows closed

    def _add_row(self, key: tuple, r: int, slots: list, changed: dict[tuple, list]) -> None:
        state = changed.get(key)
        if state is None:
            state = self.table.get(key)
            if state is None:
                state = self.table[key] = [0] * self._width
                for func, _, at in slots:
                    if func in ("min", "max"):
                        state[at] = None
            changed[key] = state
        state[0] += 1
        for func, column, at in slots:
            if func == "count":
                if column is None or column[r] is not None:
                    state[at] += 1
                continue
            x = column[r]
            if x is None:
                continue
            if func in ("sum", "avg"):
                state[at] += x
                state[at + 1] += 1
            else:
                current = state[at]
                if current is None or (x < current if func == "min" else x > current):
                    state[at] = x

    def _fold_partials(self, rows: pl.DataFrame, wm_prev: int | None, changed: dict[tuple, list]) -> int:
        """Partial rows (the final phase): drop closed windows, counting the rows they stand for; merge the rest."""
        columns = [rows.get_column(k).to_list() for k in self.keys]
        counts = rows.get_column(PARTIAL_ROWS).to_list()
        parts = []
        for i, spec in enumerate(self.op.aggs):
            for name in spec.state_columns(i):
                parts.append(rows.get_column(name).to_list())
        merges = [func for func, _, _ in self._slots for _ in ((0,) if func in ("count", "min", "max") else (0, 1))]
        keys = list(zip(*columns)) if columns else [()] * rows.height
        late = 0
        alive: list[int] | range
        if self.windowed:
            starts = _epoch_ms(rows.get_column(WS))
            ends = _epoch_ms(rows.get_column(WE))
            wm = watermark_or_min(wm_prev)
            keys = [key + (s, e) for key, s, e in zip(keys, starts, ends)]
            alive = []
            for r, (s, e) in enumerate(zip(starts, ends)):
                if s is None or e is None or is_closed(e, wm):  # start and end are NULL together
                    late += counts[r] or 0
                else:
                    alive.append(r)
        else:
            alive = range(rows.height)
        table = self.table
        blank: list = [0] + [None if m in ("min", "max") else 0 for m in merges]
        # state slot, values: the slots that add up (count, sum, avg) and the extremes, split once per frame so
        # the loop over rows tests no merge kind (0.14 -> 0.10 ms per 104 YSB rows)
        added = [(j + 1, part) for j, (part, m) in enumerate(zip(parts, merges)) if m not in ("min", "max")]
        extremes = [(j + 1, part, m == "min") for j, (part, m) in enumerate(zip(parts, merges)) if m in ("min", "max")]
        for r in alive:
            key = keys[r]
            state = changed.get(key)
            if state is None:
                state = table.get(key)
                if state is None:
                    state = table[key] = blank.copy()
                changed[key] = state
            state[0] += counts[r] or 0
            for slot, part in added:
                x = part[r]
                if x is not None:
                    state[slot] += x
            for slot, part, smallest in extremes:
                x = part[r]
                if x is not None:
                    current = state[slot]
                    if current is None or (x < current if smallest else x > current):
                        state[slot] = x
        return late

    def _wrap(self, state: list) -> None:
        """Int64 columns as polars keeps them: row counts wrap around, a SUM out of range raises
        (`state.checked_sum`)."""
        state[0] = _wrap64(state[0])
        for func, _, at in self._slots:
            if func == "sum" and _wrap64(state[at]) != state[at]:
                raise OverflowFailure(f"integer overflow: SUM reached {state[at]}, which does not fit in BIGINT")
            if func == "count":
                state[at] = _wrap64(state[at])
            if func in ("sum", "avg"):
                state[at + 1] = _wrap64(state[at + 1])

    def _close(self, wm: int) -> list[tuple[tuple, list]]:
        """Remove the windows `wm` closes; returns them."""
        closed = [(key, state) for key, state in self.table.items() if is_closed(key[-1], wm)]
        for key, _ in closed:
            del self.table[key]
        if closed:
            self._frame = None
        return closed

    # ------------------------------------------------------------ frames

    def _output(self, groups: list[tuple[tuple, list]], as_rows: bool = False) -> pl.DataFrame | RowsPart:
        """Output rows of `groups`, as `AggregateState._output_exprs` computes them."""
        if not as_rows:
            return self._output_frame(groups)
        columns = self._output_columns
        rows = [tuple(self._value(key, state, column) for column in columns) for key, state in groups]
        return RowsPart(self._output_names, self._output_dtypes, rows)

    def _output_frame(self, groups: list[tuple[tuple, list]]) -> pl.DataFrame:
        """`_output`'s frame, built column by column (`_value`'s values, one list per column).

        Built from row tuples (`orient="row"`), the frame of a window's 52
        YSB groups cost 0.23 ms, most of it two Python datetimes per row
        for the window bounds; a bound column is made here from its epoch
        milliseconds by a native cast instead (0.06 ms for the whole frame).
        """
        keys = [key for key, _ in groups]
        states = [state for _, state in groups]
        series = []
        for (kind, at), name, dtype in zip(self._output_columns, self._output_names, self._output_dtypes):
            if kind == "time" and dtype == pl.Datetime("ms"):  # epoch ms as they are kept, cast natively
                series.append(pl.Series(name, [key[at] for key in keys], dtype=pl.Int64).cast(dtype))
                continue
            if kind in ("key", "time"):
                values = [self._value(key, [], (kind, at)) for key in keys]
            elif kind == "sum":
                values = [state[at] if state[at + 1] else None for state in states]
            elif kind == "avg":
                values = [float(state[at]) / state[at + 1] if state[at + 1] else None for state in states]
            else:  # count, min, max
                values = [state[at] for state in states]
            series.append(pl.Series(name, values, dtype=dtype))
        return pl.DataFrame(series)

    def _value(self, key: tuple, state: list, column: tuple) -> object:
        kind, at = column
        if kind == "key":
            return key[at]
        if kind == "time":
            return _datetime(key[at])
        if kind == "count":
            return state[at]
        if kind == "sum":
            return state[at] if state[at + 1] else None
        if kind == "avg":
            return float(state[at]) / state[at + 1] if state[at + 1] else None
        return state[at]  # min, max

    def earliest_window_start(self) -> int | None:
        """The smallest window start of the state (epoch ms), as `frame()`'s window_start column's min."""
        if not self.windowed or not self.table:
            return None
        at = len(self.keys)
        return min(key[at] for key in self.table)

    def frame(self) -> pl.DataFrame:
        """The state as `AggregateState` keeps it in polars: group columns, PARTIAL_ROWS, state columns."""
        if self._frame is None:
            avg = self._avg_sums
            rows = [
                key + tuple(float(v) if i in avg else v for i, v in enumerate(state))
                for key, state in self.table.items()
            ]
            self._frame = pl.DataFrame(rows, schema=self._state_schema, orient="row")
        return self._frame

    def _schemas(self) -> None:
        """Where each output column comes from, and the polars schemas of the output and of `frame()`."""
        op, nkeys = self.op, len(self.keys)
        sources: dict[str, tuple[str, int]] = {k: ("key", j) for j, k in enumerate(self.keys)}
        if self.windowed:
            sources[WS], sources[WE] = ("time", nkeys), ("time", nkeys + 1)
        for spec, (func, _, at) in zip(op.aggs, self._slots):
            sources[spec.name] = (func, at)
        self._output_columns = [sources[f.name] for f in op.output]
        self._output_schema = {f.name: f.dtype.polars for f in op.output}
        self._output_names, self._output_dtypes = list(self._output_schema), list(self._output_schema.values())
        state: dict[str, pl.DataType] = dict(zip(self.keys, self._key_types))
        if self.windowed:
            state[WS] = state[WE] = pl.Int64()
        state[PARTIAL_ROWS] = pl.Int64()
        self._avg_sums = set()
        for i, spec in enumerate(op.aggs):
            at = self._slots[i][2]
            for k, name in enumerate(spec.state_columns(i)):
                if spec.func in ("min", "max"):
                    state[name] = spec.dtype.polars
                elif spec.func == "avg" and k == 0:
                    state[name] = sum_type(spec.func, spec.dtype, spec.arg_dtype).polars
                    if state[name] == pl.Float64:
                        self._avg_sums.add(at)  # summed from 0, an int until the first value
                else:
                    state[name] = pl.Int64()
        self._state_schema = state


_EPOCH = dt.datetime(1970, 1, 1)


def _datetime(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


def _epoch_ms(times: pl.Series) -> list[int | None]:
    """Epoch milliseconds of a timestamp column (no query for the usual millisecond unit)."""
    if times.dtype == pl.Datetime("ms"):
        return times.cast(pl.Int64).to_list()  # Series.cast is native; to_physical runs a query
    return times.dt.epoch("ms").to_list()
