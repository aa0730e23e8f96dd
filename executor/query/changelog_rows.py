"""Folding small changelog parts row by row, in a dict, instead of in polars.

The driver of collect() receives each batch's changelog (upserts and
deletes per output task) and folds them before updating the collected
table (`changelog.py`: per group key, the last operation wins). On
micro-batches the parts are a handful of rows, and polars' per-call cost
(a `with_columns` per part, then the concat, sort and group-by of the fold)
is most of the driver's work per batch. `RowFold` keeps the last row (or a
delete) per key in a dict instead: the same fold, for parts it can take
exactly, whose values survive a trip through Python objects (no float
keys, which group NaN and -0.0 differently; no nanosecond timestamps).
`take()` returns the fold as one (upserts, deletes) part for
`ChangelogBuffer`, which handles every other part as before.

A worker sends such a part as `RowsPart` (`pack`): the rows the fold
takes, instead of Arrow IPC bytes the driver would decode only to read
their rows again; a polars call less on either side, per output task.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from executor.state.rows import RowsPart
from executor.multiproc.shuffle import decode, encode

MAX_ROWS = 256  # a bigger part goes to polars' fold (after this one's rows)
MAX_KEYS = 50_000  # Python tuples take several times a frame's memory: hand the fold on beyond this many keys
_EXACT = (
    pl.Int8,
    pl.Int16,
    pl.Int32,
    pl.Int64,
    pl.UInt8,
    pl.UInt16,
    pl.UInt32,
    pl.UInt64,
    pl.String,
    pl.Boolean,
    pl.Date,
    pl.Datetime("ms"),
    pl.Datetime("us"),
    pl.Duration("ms"),
    pl.Duration("us"),
    pl.Null,
)
_EXACT_VALUES = _EXACT + (pl.Float64, pl.Float32)


def _exact(dtype: pl.DataType, allowed: tuple) -> bool:
    return any(dtype == a for a in allowed)


@functools.lru_cache(maxsize=1024)
def _survives(dtypes: tuple[pl.DataType, ...]) -> bool:
    """Whether every value of columns of these types comes back the same from a Python object."""
    return all(_exact(t, _EXACT_VALUES) for t in dtypes)


Part = pl.DataFrame | RowsPart


def pack(frame: pl.DataFrame | RowsPart) -> bytes | RowsPart:
    """A changelog part for the driver: rows when the fold may take them exactly, else Arrow IPC bytes."""
    if frame.height > MAX_ROWS or not _survives(tuple(frame.dtypes)):
        return encode(as_frame(frame))  # type: ignore[arg-type]
    if isinstance(frame, RowsPart):
        return frame
    return RowsPart(frame.columns, frame.dtypes, frame.rows())


def unpack(payload: bytes | RowsPart) -> Part:
    """What `pack` made, as the fold takes it (rows stay rows)."""
    return decode(payload) if isinstance(payload, bytes) else payload


def as_frame(part: Part | None) -> pl.DataFrame | None:
    """A part for polars' fold (`ChangelogBuffer`), which the row fold could not take."""
    return part.frame() if isinstance(part, RowsPart) else part


@dataclass
class RowFold:
    """The fold of the changelog parts added so far: per key, its last row, or None for a delete."""

    keys: list[str]
    schema: pl.Schema | None = None
    rows: dict[tuple, tuple | None] = field(default_factory=dict)
    _columns: list[str] = field(default_factory=list, repr=False)  # `schema`'s names and dtypes, once it is set
    _dtypes: list[pl.DataType] = field(default_factory=list, repr=False)

    def add(self, upserts: Part, deletes: Part | None) -> bool:
        """Fold one part in (its deletes, then its upserts); False when it must go to polars' fold instead."""
        if not self._takes(upserts, deletes):
            return False
        if deletes is not None and deletes.height:
            if isinstance(deletes, RowsPart):
                at = [deletes.columns.index(k) for k in self.keys]
                for row in deletes.values:
                    self.rows[tuple(row[i] for i in at)] = None
            else:
                for key in zip(*(deletes.get_column(k).to_list() for k in self.keys)):
                    self.rows[key] = None
        if upserts.height:
            at = [upserts.columns.index(k) for k in self.keys]
            for row in upserts.values if isinstance(upserts, RowsPart) else upserts.rows():
                self.rows[tuple(row[i] for i in at)] = row
        return True

    @property
    def full(self) -> bool:
        return len(self.rows) >= MAX_KEYS

    def _takes(self, upserts: Part, deletes: Part | None) -> bool:
        if not self.keys or upserts.height + (0 if deletes is None else deletes.height) > MAX_ROWS:
            return False
        if self.schema is None:
            schema = pl.Schema(list(zip(upserts.columns, upserts.dtypes)))
            if any(k not in schema or not _exact(schema[k], _EXACT) for k in self.keys):
                return False
            if not all(_exact(t, _EXACT_VALUES) for t in schema.values()):
                return False
            self.schema = schema
        if not self._columns:
            self._columns, self._dtypes = list(self.schema.names()), list(self.schema.dtypes())
        if upserts.columns != self._columns or upserts.dtypes != self._dtypes:  # no Schema per part
            return False
        if deletes is None:
            return True
        types = dict(zip(deletes.columns, deletes.dtypes))
        return all(types.get(k) == self.schema[k] for k in self.keys)

    def take(self) -> tuple[pl.DataFrame, pl.DataFrame | None] | None:
        """The fold so far as one part (None when empty), emptying it."""
        if not self.rows or self.schema is None:
            return None
        upserts: list[Any] = [row for row in self.rows.values() if row is not None]
        deletes = [key for key, row in self.rows.items() if row is None]
        self.rows = {}
        frame = pl.DataFrame(upserts, schema=self.schema, orient="row")
        key_schema = {k: self.schema[k] for k in self.keys}
        return frame, (pl.DataFrame(deletes, schema=key_schema, orient="row") if deletes else None)
