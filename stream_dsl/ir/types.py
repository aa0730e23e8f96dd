"""SQL types and their polars dtypes; schemas as immutable records.

TIMESTAMP is `Datetime("ms")` inside, INTERVAL a `Duration("ms")`. The type
rules for operators live here so the binder and the dataframe API agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field as _field
from typing import Any, ClassVar, Iterable, Iterator

import polars as pl


class DataType:
    """A SQL type: a kind (BIGINT, DECIMAL, LIST, STRUCT, ...) and its parameters.

    Instances are interned, one object per distinct type (also after unpickling
    in a worker), so `is` and `==` agree and plans compare types cheaply. The
    scalar types are class attributes (`DataType.BIGINT`); parametric ones come
    from `decimal`, `list_of`, `struct_of` and `map_of`.
    """

    __slots__ = ("kind", "params", "value", "__weakref__")
    _interned: ClassVar[dict[tuple[str, tuple[Any, ...]], "DataType"]] = {}

    kind: str
    params: tuple[Any, ...]
    value: str  # the name as DuckDB shows it: BIGINT, DECIMAL(10,2), BIGINT[], STRUCT(a BIGINT), MAP(STRING, BIGINT)

    BIGINT: ClassVar["DataType"]
    INT: ClassVar["DataType"]
    DOUBLE: ClassVar["DataType"]
    STRING: ClassVar["DataType"]
    BOOLEAN: ClassVar["DataType"]
    TIMESTAMP: ClassVar["DataType"]
    INTERVAL: ClassVar["DataType"]
    DATE: ClassVar["DataType"]
    NULL: ClassVar["DataType"]
    HUGEINT: ClassVar["DataType"]  # internal only: the exact partial sum of an AVG over integers
    BINARY: ClassVar["DataType"]  # internal only: an aggregate UDF's partial state, pickled (ir/udfs.py)
    LIST_BIGINT: ClassVar["DataType"]
    LIST_INT: ClassVar["DataType"]
    LIST_DOUBLE: ClassVar["DataType"]
    LIST_STRING: ClassVar["DataType"]
    LIST_BOOLEAN: ClassVar["DataType"]
    LIST_TIMESTAMP: ClassVar["DataType"]
    LIST_INTERVAL: ClassVar["DataType"]
    LIST_NULL: ClassVar["DataType"]

    def __new__(cls, kind: str, params: tuple[Any, ...] = ()) -> "DataType":
        key = (kind, params)
        found = cls._interned.get(key)
        if found is None:
            found = super().__new__(cls)
            object.__setattr__(found, "kind", kind)
            object.__setattr__(found, "params", params)
            object.__setattr__(found, "value", _display(kind, params))
            cls._interned[key] = found
        return found

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("DataType is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (DataType, (self.kind, self.params))

    def __copy__(self) -> "DataType":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "DataType":
        return self

    def __repr__(self) -> str:
        return self.value

    def __str__(self) -> str:
        return self.value

    @property
    def polars(self) -> pl.DataType:
        return _to_polars(self)

    @property
    def is_numeric(self) -> bool:
        return self.kind in ("BIGINT", "INT", "DOUBLE", "DECIMAL")

    @property
    def is_integer(self) -> bool:
        return self.kind in ("BIGINT", "INT")

    @property
    def is_list(self) -> bool:
        return self.kind == "LIST"

    @property
    def is_struct(self) -> bool:
        return self.kind == "STRUCT"

    @property
    def is_map(self) -> bool:
        return self.kind == "MAP"

    @property
    def is_decimal(self) -> bool:
        return self.kind == "DECIMAL"

    @property
    def is_nested(self) -> bool:
        return self.kind in ("LIST", "STRUCT", "MAP")

    @property
    def element(self) -> "DataType":
        """A list type's element type."""
        if not self.is_list:
            raise TypeError(f"{self.value} is not a list type")
        element: DataType = self.params[0]
        return element

    @property
    def precision(self) -> int:
        """A DECIMAL's total number of digits."""
        return self._decimal_params()[0]

    @property
    def scale(self) -> int:
        """A DECIMAL's digits after the point."""
        return self._decimal_params()[1]

    @property
    def fields(self) -> tuple[tuple[str, "DataType"], ...]:
        """A STRUCT's (name, type) pairs, in order."""
        if not self.is_struct:
            raise TypeError(f"{self.value} is not a STRUCT type")
        return self.params

    @property
    def key(self) -> "DataType":
        """A MAP's key type."""
        return self._map_params()[0]

    @property
    def map_value(self) -> "DataType":
        """A MAP's value type (`value` is the type's name, as an Enum member's was)."""
        return self._map_params()[1]

    def _decimal_params(self) -> tuple[int, int]:
        if not self.is_decimal:
            raise TypeError(f"{self.value} is not a DECIMAL type")
        return self.params[0], self.params[1]

    def _map_params(self) -> tuple["DataType", "DataType"]:
        if not self.is_map:
            raise TypeError(f"{self.value} is not a MAP type")
        return self.params[0], self.params[1]


MAX_DECIMAL_PRECISION = 38  # polars' Decimal is 128-bit, as DuckDB's widest DECIMAL


def decimal(precision: int, scale: int = 0) -> DataType:
    """DECIMAL(precision, scale): exact, `scale` digits after the point, at most 38 digits in all."""
    if not 1 <= precision <= MAX_DECIMAL_PRECISION:
        raise TypeError(f"DECIMAL precision must be between 1 and {MAX_DECIMAL_PRECISION}, got {precision}")
    if not 0 <= scale <= precision:
        raise TypeError(f"DECIMAL scale must be between 0 and the precision ({precision}), got {scale}")
    return DataType("DECIMAL", (precision, scale))


def list_of(element: DataType) -> DataType:
    """The list type of `element` values."""
    if element.kind in _INTERNAL_KINDS:
        raise TypeError(f"no list type of {element.value}")
    return DataType("LIST", (element,))


def struct_of(fields: Iterable[tuple[str, DataType]]) -> DataType:
    """STRUCT(name type, ...): a row of named fields, in order; names unique."""
    pairs = tuple(fields)
    names = [name for name, _ in pairs]
    if not pairs:
        raise TypeError("a STRUCT needs at least one field")
    if len(set(names)) != len(names):
        raise TypeError(f"duplicate field name in STRUCT({', '.join(names)})")
    for _, dtype in pairs:
        if dtype.kind in _INTERNAL_KINDS:
            raise TypeError(f"no STRUCT field of type {dtype.value}")
    return DataType("STRUCT", pairs)


def map_of(key: DataType, value: DataType) -> DataType:
    """MAP(key, value)."""
    for dtype in (key, value):
        if dtype.kind in _INTERNAL_KINDS:
            raise TypeError(f"no MAP of {dtype.value}")
    return DataType("MAP", (key, value))


_INTERNAL_KINDS = frozenset({"HUGEINT", "BINARY"})


def _display(kind: str, params: tuple[Any, ...]) -> str:
    if kind == "DECIMAL":
        return f"DECIMAL({params[0]},{params[1]})"
    if kind == "LIST":
        return f"{params[0].value}[]"
    if kind == "STRUCT":
        return "STRUCT(" + ", ".join(f"{_quoted(name)} {dtype.value}" for name, dtype in params) + ")"
    if kind == "MAP":
        return f"MAP({params[0].value}, {params[1].value})"
    return kind


def _quoted(name: str) -> str:
    return name if name.isidentifier() else '"' + name.replace('"', '""') + '"'


for _kind in (
    "BIGINT",
    "INT",
    "DOUBLE",
    "STRING",
    "BOOLEAN",
    "TIMESTAMP",
    "INTERVAL",
    "DATE",
    "NULL",
    "HUGEINT",
    "BINARY",
):
    type.__setattr__(DataType, _kind, DataType(_kind))
for _kind in ("BIGINT", "INT", "DOUBLE", "STRING", "BOOLEAN", "TIMESTAMP", "INTERVAL", "NULL"):
    type.__setattr__(DataType, "LIST_" + _kind, list_of(DataType(_kind)))


_SCALAR_POLARS: dict[str, pl.DataType] = {
    "BIGINT": pl.Int64(),
    "INT": pl.Int32(),
    "DOUBLE": pl.Float64(),
    "STRING": pl.String(),
    "BOOLEAN": pl.Boolean(),
    "TIMESTAMP": pl.Datetime("ms"),
    "INTERVAL": pl.Duration("ms"),
    "DATE": pl.Date(),
    "NULL": pl.Null(),
    "HUGEINT": pl.Int128(),
    "BINARY": pl.Binary(),
}


def _to_polars(dtype: DataType) -> pl.DataType:
    if dtype.kind == "DECIMAL":
        return pl.Decimal(dtype.precision, dtype.scale)
    if dtype.kind == "LIST":
        return pl.List(dtype.element.polars)
    if dtype.kind == "STRUCT":
        return pl.Struct({name: field.polars for name, field in dtype.fields})
    if dtype.kind == "MAP":  # as Arrow lays a map out: a list of key/value entries
        return pl.List(pl.Struct({"key": dtype.key.polars, "value": dtype.map_value.polars}))
    return _SCALAR_POLARS[dtype.kind]


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
    "DECIMAL": decimal(18, 3),  # DuckDB's DECIMAL without a precision
    "NUMERIC": decimal(18, 3),
    "STRING": DataType.STRING,
    "VARCHAR": DataType.STRING,
    "TEXT": DataType.STRING,
    "CHAR": DataType.STRING,
    "BOOLEAN": DataType.BOOLEAN,
    "BOOL": DataType.BOOLEAN,
    "TIMESTAMP": DataType.TIMESTAMP,
    "DATETIME": DataType.TIMESTAMP,
    "DATE": DataType.DATE,
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
    if dtype.is_decimal():
        return decimal_from_polars(dtype)
    if dtype.is_float():
        return DataType.DOUBLE
    if dtype in (pl.String, pl.Categorical, pl.Enum):
        return DataType.STRING
    if isinstance(dtype, pl.Datetime):
        return DataType.TIMESTAMP
    if dtype == pl.Date:
        return DataType.DATE
    if isinstance(dtype, pl.Duration):
        return DataType.INTERVAL
    if dtype == pl.Null:
        return DataType.NULL
    if isinstance(dtype, (pl.List, pl.Array)):
        inner = dtype.inner
        return list_of(type_from_polars(inner if isinstance(inner, pl.DataType) else inner()))
    if isinstance(dtype, pl.Struct):
        return struct_of(
            (f.name, type_from_polars(f.dtype if isinstance(f.dtype, pl.DataType) else f.dtype())) for f in dtype.fields
        )
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
    if a.is_decimal or b.is_decimal:
        return common_decimal(a, b)
    if DataType.BIGINT in (a, b):
        return DataType.BIGINT
    return DataType.INT


def as_decimal(t: DataType) -> DataType:
    """The DECIMAL an exact number widens to, as DuckDB: INT is DECIMAL(10,0), BIGINT DECIMAL(19,0)."""
    if t.is_decimal:
        return t
    return decimal(10 if t is DataType.INT else 19, 0)


def common_decimal(a: DataType, b: DataType) -> DataType:
    """The DECIMAL two exact numbers widen to: the most integer digits and the most decimals; beyond 38 digits
    in all, decimals give way to integer digits (DuckDB's rule)."""
    a, b = as_decimal(a), as_decimal(b)
    digits = max(a.precision - a.scale, b.precision - b.scale)
    scale = min(max(a.scale, b.scale), MAX_DECIMAL_PRECISION - digits)
    return decimal(min(MAX_DECIMAL_PRECISION, digits + scale), scale)


def decimal_from_polars(dtype: pl.DataType) -> DataType:
    """A polars Decimal's SQL type (polars' precision None is 38)."""
    precision = getattr(dtype, "precision", None) or MAX_DECIMAL_PRECISION
    return decimal(precision, getattr(dtype, "scale", 0) or 0)


def comparable(a: DataType, b: DataType) -> bool:
    """Whether `a = b` (and < >) is meaningful without an explicit cast."""
    return a is b or DataType.NULL in (a, b) or common_numeric(a, b) is not None or _date_and_timestamp(a, b)


def _date_and_timestamp(a: DataType, b: DataType) -> bool:
    """A DATE meets a TIMESTAMP as the TIMESTAMP of its midnight (DuckDB)."""
    return {a, b} == {DataType.DATE, DataType.TIMESTAMP}


def common_type(types: Iterable[DataType]) -> DataType | None:
    """The type that values of all `types` share (CASE branches, IN lists, UNION), or None."""
    result = DataType.NULL
    for t in types:
        if t is DataType.NULL or t is result:
            continue
        if result is DataType.NULL:
            result = t
            continue
        widened = DataType.TIMESTAMP if _date_and_timestamp(result, t) else common_numeric(result, t)
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
