"""SQL types and their polars dtypes; schemas as immutable records.

TIMESTAMP is `Datetime("ms")` inside, INTERVAL a `Duration("ms")`. The type
rules for operators live here so the binder and the dataframe API agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field as _field
from enum import Enum
from typing import Iterable, Iterator

import polars as pl


class DataType(Enum):
    BIGINT = "BIGINT"
    INT = "INT"
    DOUBLE = "DOUBLE"
    STRING = "STRING"
    BOOLEAN = "BOOLEAN"
    TIMESTAMP = "TIMESTAMP"
    INTERVAL = "INTERVAL"
    NULL = "NULL"
    # Internal only (no name a user can write): the exact partial sum of an AVG over integers.
    HUGEINT = "HUGEINT"
    # Lists (ARRAY_AGG's result, and the list-valued state of MEDIAN, STRING_AGG...): one member per element
    # type, named as DuckDB shows them; no DDL name yet (`list_of`, `element`).
    LIST_BIGINT = "BIGINT[]"
    LIST_INT = "INT[]"
    LIST_DOUBLE = "DOUBLE[]"
    LIST_STRING = "STRING[]"
    LIST_BOOLEAN = "BOOLEAN[]"
    LIST_TIMESTAMP = "TIMESTAMP[]"
    LIST_INTERVAL = "INTERVAL[]"
    LIST_NULL = "NULL[]"
    # Internal only: an aggregate UDF's partial state, pickled (stream_dsl/ir/udfs.py).
    BINARY = "BINARY"

    def __repr__(self) -> str:
        return self.value

    @property
    def polars(self) -> pl.DataType:
        return _TO_POLARS[self]

    @property
    def is_numeric(self) -> bool:
        return self in (DataType.BIGINT, DataType.INT, DataType.DOUBLE)

    @property
    def is_integer(self) -> bool:
        return self in (DataType.BIGINT, DataType.INT)

    @property
    def is_list(self) -> bool:
        return self.value.endswith("[]")

    @property
    def element(self) -> "DataType":
        """A list type's element type."""
        if not self.is_list:
            raise TypeError(f"{self.value} is not a list type")
        return DataType(self.value[:-2])


def list_of(element: DataType) -> DataType:
    """The list type of `element` values (a list of lists is not a type yet)."""
    if element.is_list or element is DataType.HUGEINT:
        raise TypeError(f"no list type of {element.value}")
    return DataType(element.value + "[]")


_TO_POLARS: dict[DataType, pl.DataType] = {
    DataType.BIGINT: pl.Int64(),
    DataType.INT: pl.Int32(),
    DataType.DOUBLE: pl.Float64(),
    DataType.STRING: pl.String(),
    DataType.BOOLEAN: pl.Boolean(),
    DataType.TIMESTAMP: pl.Datetime("ms"),
    DataType.INTERVAL: pl.Duration("ms"),
    DataType.NULL: pl.Null(),
    DataType.HUGEINT: pl.Int128(),
    DataType.BINARY: pl.Binary(),
}
_TO_POLARS |= {t: pl.List(t.element.polars) for t in DataType if t.is_list}

# Names a user may write in DDL or CAST, mapped to our types.
TYPE_NAMES: dict[str, DataType] = {
    "BIGINT": DataType.BIGINT,
    "LONG": DataType.BIGINT,
    "INT64": DataType.BIGINT,
    "INT": DataType.INT,
    "INTEGER": DataType.INT,
    "SMALLINT": DataType.INT,
    "TINYINT": DataType.INT,
    "DOUBLE": DataType.DOUBLE,
    "DOUBLE PRECISION": DataType.DOUBLE,
    "FLOAT": DataType.DOUBLE,
    "REAL": DataType.DOUBLE,
    "DECIMAL": DataType.DOUBLE,
    "NUMERIC": DataType.DOUBLE,
    "STRING": DataType.STRING,
    "VARCHAR": DataType.STRING,
    "TEXT": DataType.STRING,
    "CHAR": DataType.STRING,
    "BOOLEAN": DataType.BOOLEAN,
    "BOOL": DataType.BOOLEAN,
    "TIMESTAMP": DataType.TIMESTAMP,
    "DATETIME": DataType.TIMESTAMP,
}


INTEGER_BOUNDS: dict[DataType, tuple[int, int]] = {
    DataType.INT: (-(2**31), 2**31 - 1),
    DataType.BIGINT: (-(2**63), 2**63 - 1),
}  # the smallest and largest value of each integer type


def type_from_name(name: str) -> DataType | None:
    """Map a type name as written (any case) to a DataType, or None if unknown."""
    return TYPE_NAMES.get(" ".join(name.upper().split()))


def type_from_polars(dtype: pl.DataType) -> DataType:
    """The SQL type of a polars dtype (used when a frame or API value brings its own)."""
    if dtype == pl.Boolean:
        return DataType.BOOLEAN
    if dtype in (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16):
        return DataType.INT
    if dtype.is_integer():
        return DataType.BIGINT
    if dtype.is_float() or dtype.is_decimal():
        return DataType.DOUBLE
    if dtype in (pl.String, pl.Categorical, pl.Enum):
        return DataType.STRING
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        return DataType.TIMESTAMP
    if isinstance(dtype, pl.Duration):
        return DataType.INTERVAL
    if dtype == pl.Null:
        return DataType.NULL
    if isinstance(dtype, pl.List) and not isinstance(dtype.inner, pl.List):
        inner = dtype.inner
        return list_of(type_from_polars(inner if isinstance(inner, pl.DataType) else inner()))
    raise TypeError(f"no SQL type for polars dtype {dtype}")


def common_numeric(a: DataType, b: DataType) -> DataType | None:
    """The type two numeric operands widen to, or None if either is not numeric."""
    if a is DataType.NULL:
        return b if b.is_numeric or b is DataType.NULL else None
    if b is DataType.NULL:
        return a if a.is_numeric else None
    if not (a.is_numeric and b.is_numeric):
        return None
    if DataType.DOUBLE in (a, b):
        return DataType.DOUBLE
    if DataType.BIGINT in (a, b):
        return DataType.BIGINT
    return DataType.INT


def comparable(a: DataType, b: DataType) -> bool:
    """Whether `a = b` (and < >) is meaningful without an explicit cast."""
    return a is b or DataType.NULL in (a, b) or common_numeric(a, b) is not None


def common_type(types: Iterable[DataType]) -> DataType | None:
    """The type that values of all `types` share (CASE branches, IN lists, UNION), or None."""
    result = DataType.NULL
    for t in types:
        if t is DataType.NULL or t is result:
            continue
        if result is DataType.NULL:
            result = t
            continue
        widened = common_numeric(result, t)
        if widened is None:
            return None
        result = widened
    return result


@dataclass(frozen=True, slots=True)
class Field:
    """A named column. `not_null` (declared `NOT NULL` in DDL) makes a source dead-letter records without a value.

    It is left out of equality: only sources enforce it, and plan nodes built
    above a scan describe the same column whether or not it was declared.
    """

    name: str
    dtype: DataType
    not_null: bool = _field(default=False, compare=False)
    unit: str | None = _field(default=None, compare=False)  # epoch unit a source reads a TIMESTAMP in (None: ms)

    def __str__(self) -> str:
        name = self.name if self.name.isidentifier() else '"' + self.name.replace('"', '""') + '"'
        return f"{name}: {self.dtype.value}" + (" NOT NULL" if self.not_null else "")


@dataclass(frozen=True, slots=True)
class Schema:
    """An ordered list of uniquely named fields."""

    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for f in self.fields:
            if f.name in seen:
                raise ValueError(f"duplicate column name '{f.name}' in schema")
            seen.add(f.name)

    @classmethod
    def of(cls, *pairs: tuple[str, DataType]) -> "Schema":
        return cls(tuple(Field(n, t) for n, t in pairs))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __contains__(self, name: object) -> bool:
        return any(f.name == name for f in self.fields)

    def get(self, name: str) -> Field | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def dtype(self, name: str) -> DataType:
        field = self.get(name)
        if field is None:
            raise KeyError(name)
        return field.dtype

    def select(self, names: Iterable[str]) -> "Schema":
        return Schema(tuple(self.fields[self.names.index(n)] for n in names))

    def to_polars(self) -> dict[str, pl.DataType]:
        return {f.name: f.dtype.polars for f in self.fields}

    def __str__(self) -> str:
        return ", ".join(str(f) for f in self.fields)
