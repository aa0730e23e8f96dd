"""List functions, element access and JSON held as text, with DuckDB's semantics.

- `a[i]` is LIST_ELEMENT(a, i): 1-based, a negative index counts from the
  end, 0 or out of range is NULL. `[1, 2]` and `ARRAY[1, 2]` are
  LIST_VALUE(1, 2): the elements are cast to their common type when bound.
- LEN / LENGTH of a list is its CARDINALITY (LENGTH of a string stays the
  number of characters): `adjust` picks the list form when the binder sees a
  list argument.
- JSON_VALUE / JSON_QUERY / JSON_EXTRACT_STRING parse each text with Python's
  json module and follow a constant path (`$`, `.key`, `."quoted key"`,
  `[n]`, `[-n]` from the end, `['key']`). Polars' `str.json_path_match` is not
  used: it rejects quoted keys and negative indexes and returns an object and
  a string that holds the same text alike, so JSON_VALUE could not tell them
  apart. Malformed JSON gives NULL where DuckDB raises an error.
  JSON_VALUE returns a scalar as text without JSON quotes (SQL standard,
  Flink, Trino: `'x'`, where DuckDB's json_value gives `'"x"'`), NULL for an
  object, an array, a JSON null or a missing path. JSON_QUERY returns an
  object or array as compact JSON text (DuckDB's json_extract), NULL for a
  scalar. JSON_EXTRACT_STRING is DuckDB's: a scalar as text, an object or
  array as JSON text.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, Callable

import polars as pl

from stream_dsl.ir.types import DataType, common_type, comparable, list_of

T = DataType

# ---------------------------------------------------------------- lists


def list_element(a: pl.Expr, i: pl.Expr) -> pl.Expr:
    index = i.cast(pl.Int64)
    zero_based = pl.when(index > 0).then(index - 1).when(index < 0).then(index)
    return a.list.get(zero_based, null_on_oob=True)


def cardinality(a: pl.Expr) -> pl.Expr:
    return a.list.len().cast(pl.Int64)


def list_contains(a: pl.Expr, x: pl.Expr) -> pl.Expr:
    """NULL elements never match; a NULL item gives NULL, but an empty list false (DuckDB)."""
    found = a.list.contains(x, nulls_equal=False)
    return pl.when(a.list.len() == 0).then(False).when(x.is_null()).then(None).otherwise(found)


def list_value(*xs: pl.Expr) -> pl.Expr:
    if not xs:
        return pl.lit([], dtype=pl.List(pl.Null))
    return pl.concat_list(list(xs))


def split(s: pl.Expr, separator: pl.Expr) -> pl.Expr:
    """An empty separator splits into characters; '' gives [''], or [] split into characters (DuckDB)."""
    parts = s.str.split(separator)
    return pl.when((s == "") & (separator != "")).then(pl.concat_list(pl.lit(""))).otherwise(parts)


def array_to_string(a: pl.Expr, separator: pl.Expr) -> pl.Expr:
    """NULL elements are skipped, and a list of NULLs only gives NULL; a NULL separator is ',' (DuckDB)."""
    only_nulls = (a.list.len() > 0) & (a.list.drop_nulls().list.len() == 0)
    return pl.when(only_nulls).then(None).otherwise(a.list.join(separator.fill_null(","), ignore_nulls=True))


# ---------------------------------------------------------------- JSON paths

_STEP = re.compile(
    r"""\.([^\W\d]\w*)|\."((?:[^"\\]|\\.)*)"|\[\s*(-?\d+)\s*\]|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]"""
)


def parse_path(path: str) -> list[str | int] | None:
    """A JSON path's steps (keys and indexes), or None when it is not one this module follows."""
    if not path.startswith("$"):
        return None
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            return None
        name, quoted, index, single, double = m.groups()
        if index is not None:
            steps.append(int(index))
        else:
            key = name if name is not None else single if single is not None else double
            steps.append(key if key is not None else json.loads('"' + quoted + '"'))
        pos = m.end()
    return steps


def _follow(text: str, steps: list[str | int]) -> tuple[bool, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return False, None
    for step in steps:
        if isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, dict) and step in value:
            value = value[step]
        else:
            return False, None
    return True, value


def _json_text(value: Any) -> str:
    """Compact JSON, numbers written as DuckDB writes them."""
    if isinstance(value, dict):
        return "{" + ",".join(_string_json(k) + ":" + _json_text(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, float):
        return double_text(value)
    if isinstance(value, str):
        return _string_json(value)
    return json.dumps(value, ensure_ascii=False)


_HEX_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9a-f]{4})")


def _string_json(text: str) -> str:
    """A JSON string as DuckDB writes it: control characters as `\\u001B` (upper-case hex)."""
    return _HEX_ESCAPE.sub(lambda m: m.group(1) + "\\u" + m.group(2).upper(), json.dumps(text, ensure_ascii=False))


def double_text(x: float) -> str:
    """A JSON number as DuckDB (yyjson) writes it: the shortest digits, fixed notation from 1e-6 to below
    1e21 (with '.0' when whole), else `1.5e300`, `1e-7` (JavaScript's rule without its '+')."""
    if x == 0:
        return "-0.0" if math.copysign(1.0, x) < 0 else "0.0"
    sign = "-" if x < 0 else ""
    as_decimal = Decimal(repr(abs(x))).normalize().as_tuple()
    shown = "".join(map(str, as_decimal.digits))
    assert isinstance(as_decimal.exponent, int)
    power = len(shown) + as_decimal.exponent  # x = 0.shown * 10^power
    if len(shown) <= power <= 21:
        return sign + shown + "0" * (power - len(shown)) + ".0"
    if 0 < power <= 21:
        return sign + shown[:power] + "." + shown[power:]
    if -6 < power <= 0:
        return sign + "0." + "0" * -power + shown
    rest = "." + shown[1:] if len(shown) > 1 else ""
    return f"{sign}{shown[0]}{rest}e{power - 1}"


def _scalar_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return double_text(value) if math.isfinite(value) else None
    return value if isinstance(value, str) else str(value)


def _json_value(text: str, steps: list[str | int]) -> str | None:
    found, value = _follow(text, steps)
    return None if not found or isinstance(value, (dict, list)) else _scalar_text(value)


def _json_query(text: str, steps: list[str | int]) -> str | None:
    found, value = _follow(text, steps)
    return _json_text(value) if found and isinstance(value, (dict, list)) else None


def _json_extract_string(text: str, steps: list[str | int]) -> str | None:
    found, value = _follow(text, steps)
    if not found:
        return None
    return _json_text(value) if isinstance(value, (dict, list)) else _scalar_text(value)


def _json_function(each: Callable[[str, list[str | int]], str | None]) -> Callable[[pl.Expr, pl.Expr], pl.Expr]:
    def call(text: pl.Expr, path: pl.Expr) -> pl.Expr:
        given = pl.select(path).item()
        if given is None:
            return pl.repeat(None, pl.len(), dtype=pl.String)
        steps = parse_path(given)
        assert steps is not None  # checked when bound

        def rows(values: pl.Series) -> pl.Series:
            return pl.Series(values.name, [None if v is None else each(v, steps) for v in values], dtype=pl.String)

        return text.cast(pl.String).map_batches(rows, return_dtype=pl.String, is_elementwise=True)

    return call


def _check_path(args: list[Any]) -> str | None:
    from stream_dsl.ir.expr import Literal

    path = args[1]
    if not isinstance(path, Literal):
        return "the JSON path must be a string literal"
    if path.value is not None and parse_path(path.value) is None:
        return f"unsupported JSON path '{path.value}' (expected e.g. '$.a.b', '$.items[0]' or '$.\"a key\"')"
    return None


# ---------------------------------------------------------------- binding


def _element_type(types: list[DataType]) -> DataType:
    return types[0].element if types[0].is_list else T.NULL


def adjust(name: str, args: list[Any], span: Any) -> tuple[str, list[Any]]:
    """The function to call and its arguments, given what the binder found: LENGTH of a list is CARDINALITY;
    a NULL list argument is typed; LIST_VALUE's and LIST_CONTAINS' operands are cast to a common type.
    Raises BindError for what the argument kinds cannot say."""
    from stream_dsl.bind import typecheck as tc
    from stream_dsl.errors import BindError

    if name == "length" and len(args) == 1 and args[0].dtype.is_list:
        name = "cardinality"
    if name in LIST_ARGUMENT and args and args[0].dtype is T.NULL:
        args = [tc.cast(args[0], list_of(T.NULL), args[0].span), *args[1:]]
    if name == "list_value":
        element = common_type(a.dtype for a in args)
        if element is None:
            raise BindError("list elements have no common type: " + ", ".join(a.dtype.value for a in args), span=span)
        if element.is_nested:  # polars' concat_list would concatenate the inner lists
            raise BindError(f"a list literal of {element.value} values is not supported yet", span=span)
        try:
            list_of(element)
        except TypeError:
            raise BindError(f"a list of {element.value} is not supported", span=span) from None
        args = [tc.cast(a, element, a.span) for a in args]
    if name == "list_contains" and len(args) == 2 and args[0].dtype.is_list:
        element, item = args[0].dtype.element, args[1].dtype
        if not comparable(element, item):
            raise BindError(f"cannot look for a {item.value} in a {args[0].dtype.value}", span=span)
        wider = common_type([element, item]) or element
        if wider != element:
            args[0] = tc.cast(args[0], list_of(wider), args[0].span)
        if wider != item and item is not T.NULL:
            args[1] = tc.cast(args[1], wider, args[1].span)
    if name == "array_to_string" and args and args[0].dtype.is_list and args[0].dtype.element is not T.STRING:
        args[0] = tc.cast(args[0], list_of(T.STRING), args[0].span)  # each element as CAST(x AS STRING) writes it
    if name == "list_element" and args and not (args[0].dtype.is_list or args[0].dtype is T.NULL):
        raise BindError(f"cannot subscript a {args[0].dtype.value}: [i] needs a list", span=span)
    return name, args


def cast_problem(source: DataType, target: DataType) -> str | None:
    """Why CAST cannot go from `source` to `target` where lists are involved (None: it can, or no list)."""
    if source is T.NULL or not (source.is_list or target.is_list):
        return None
    if source.is_list and target.is_list:
        return cast_problem(source.element, target.element)
    if source.is_list and target is T.STRING:
        return None
    return f"cannot CAST {source.value} to {target.value}" + (
        " (a list casts to another list type or to STRING)" if source.is_list else ""
    )


UNNEST_PLACES = (
    "UNNEST gives rows, not a value: use it in FROM (FROM s CROSS JOIN UNNEST(s.list) AS t(x)) "
    "or as a whole select item of a query without aggregates"
)
LIST_ARGUMENT = ("cardinality", "list_element", "list_contains", "array_to_string")


def functions() -> list[Any]:
    from stream_dsl.ir.functions import ScalarFunction, _const

    string = _const(T.STRING)
    return [
        ScalarFunction(
            "list_element",
            ("list", "integer"),
            _element_type,
            list_element,
            doc="the element at a 1-based index (negative: from the end); NULL out of range; also `a[i]`",
            signature="list_element(a T[], i BIGINT) -> T",
            example="[10, 20, 30][1] = 10; list_element([10, 20, 30], -1) = 30; [10][5] = NULL",
        ),
        ScalarFunction(
            "cardinality",
            ("list",),
            _const(T.BIGINT),
            cardinality,
            doc="the number of elements of a list (NULLs included)",
            signature="cardinality(a T[]) -> BIGINT",
            example="cardinality([1, NULL, 3]) = 3; len([]) = 0",
        ),
        ScalarFunction(
            "list_contains",
            ("list", "any"),
            _const(T.BOOLEAN),
            list_contains,
            doc="whether the list holds the value (NULL elements never match)",
            signature="list_contains(a T[], x T) -> BOOLEAN",
            example="list_contains([1, 2], 2) = true; list_contains([1, NULL], 3) = false",
        ),
        ScalarFunction(
            "list_value",
            ("any",),
            lambda types: list_of(common_type(types) or T.NULL),
            list_value,
            variadic=True,
            min_args=0,
            doc="a list of the arguments (their common type); also `[x, ...]` and `ARRAY[x, ...]`",
            signature="list_value(x T, ...) -> T[]",
            example="[1, 2.5] = [1.0, 2.5]; ARRAY['a'] = ['a']",
            nulls="NULL arguments are NULL elements",
        ),
        ScalarFunction(
            "string_split",
            ("string", "string"),
            _const(list_of(T.STRING)),
            split,
            doc="the string's parts between separators (an empty separator: its characters)",
            signature="string_split(s STRING, separator STRING) -> STRING[]",
            example="split('a,b,,c', ',') = ['a', 'b', '', 'c']; split('', ',') = ['']",
        ),
        ScalarFunction(
            "array_to_string",
            ("list", "string"),
            string,
            array_to_string,
            doc="the elements as text joined by the separator, NULL elements skipped",
            signature="array_to_string(a T[], separator STRING) -> STRING",
            example="array_to_string([1, NULL, 3], '-') = '1-3'",
            nulls="NULL when the list is NULL or holds only NULLs; NULL elements are skipped; a NULL separator is ','",
        ),
        ScalarFunction(
            "json_value",
            ("string", "string"),
            string,
            _json_function(_json_value),
            doc="the scalar at the JSON path as text; NULL for an object, array, null or missing path",
            signature="json_value(json STRING, path STRING literal) -> STRING",
            example="""json_value('{"a": {"b": "x"}}', '$.a.b') = 'x'""",
            nulls="NULL if any argument is NULL, and for malformed JSON",
            check=_check_path,
        ),
        ScalarFunction(
            "json_query",
            ("string", "string"),
            string,
            _json_function(_json_query),
            doc="the object or array at the JSON path as compact JSON text; NULL for a scalar or missing path",
            signature="json_query(json STRING, path STRING literal) -> STRING",
            example="""json_query('{"a": [1, 2]}', '$.a') = '[1,2]'""",
            nulls="NULL if any argument is NULL, and for malformed JSON",
            check=_check_path,
        ),
        ScalarFunction(
            "json_extract_string",
            ("string", "string"),
            string,
            _json_function(_json_extract_string),
            doc="the value at the JSON path as text: a scalar unquoted, an object or array as JSON text",
            signature="json_extract_string(json STRING, path STRING literal) -> STRING",
            example="""json_extract_string('{"a": {"b": 1}}', '$.a') = '{"b":1}'""",
            nulls="NULL if any argument is NULL, for a JSON null, a missing path and malformed JSON",
            check=_check_path,
        ),
    ]


ALIASES = {
    "list_extract": "list_element",
    "array_extract": "list_element",
    "array_length": "cardinality",
    "array_contains": "list_contains",
    "array_has": "list_contains",
    "list_has": "list_contains",
    "array_value": "list_value",
    "split": "string_split",
    "str_split": "string_split",
    "string_to_array": "string_split",
    "array_join": "array_to_string",
    "list_to_string": "array_to_string",
}
