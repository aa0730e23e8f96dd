"""Regex and string functions, with DuckDB's semantics.

Regex: DuckDB uses RE2, polars Rust's `regex`; both are linear-time with the
same syntax (no backreferences, no lookaround). Where they differ:

- `\\d \\w \\s \\b` (and their negations) are ASCII in RE2 and Unicode in Rust:
  `rust_pattern` wraps them as `(?-u:\\d)` (or spells them out inside
  `[...]`), so `\\d` does not match '٣' here either.
- Replacements are RE2's: `\\1` is group 1, `\\\\` a backslash, `$` itself;
  `rust_replacement` rewrites them into Rust's `${1}` and `$$`.
- Patterns (and REGEXP_REPLACE's replacement and options) must be string
  literals here (DuckDB also takes columns): they are checked when the query
  is bound, with the position of the call, by compiling them with polars.
  The rare pattern RE2 and Rust parse differently (e.g. Rust's set operations
  `[a&&b]`, class syntax `[[:^alpha:]]` nesting) follows Rust.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import polars as pl

from stream_dsl.ir.functions_time import literal_text
from stream_dsl.ir.to_polars_checks import fail_where
from stream_dsl.ir.types import DataType

T = DataType

_ASCII_CLASS = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_ESCAPE = re.compile(r"\\(.)|(\[)|(\])", re.S)


def rust_pattern(pattern: str) -> str:
    """An RE2 pattern as a Rust regex that matches the same (ASCII `\\d \\w \\s \\b`)."""
    out, depth, pos = [], 0, 0
    for m in _ESCAPE.finditer(pattern):
        out.append(pattern[pos : m.start()])
        pos = m.end()
        escaped, opening, closing = m.groups()
        if escaped is not None:
            if escaped in "dwsDWSbB" and depth == 0:
                out.append(f"(?-u:\\{escaped})")
            elif escaped in _ASCII_CLASS and depth > 0:
                out.append(_ASCII_CLASS[escaped])
            else:
                out.append("\\" + escaped)
        elif opening:
            depth += 1
            out.append("[")
        else:
            depth = max(depth - 1, 0)
            out.append("]")
    out.append(pattern[pos:])
    return "".join(out)


def rust_replacement(replacement: str) -> str:
    """RE2's rewrite string (`\\1`, `\\\\`) in Rust's syntax (`${1}`, `$$` for a dollar)."""
    out, i = [], 0
    while i < len(replacement):
        ch = replacement[i]
        if ch == "\\" and i + 1 < len(replacement):
            nxt = replacement[i + 1]
            out.append(f"${{{nxt}}}" if nxt.isdigit() else nxt if nxt == "\\" else "\\" + nxt)
            i += 2
            continue
        out.append("$$" if ch == "$" else ch)
        i += 1
    return "".join(out)


def _pattern_error(pattern: str) -> str | None:
    try:
        pl.select(pl.lit("").str.contains(rust_pattern(pattern)))
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().splitlines()
        detail = next((line.strip() for line in first if line.strip().startswith("error:")), "")
        return f"invalid regular expression '{pattern}'" + (f" ({detail.removeprefix('error: ')})" if detail else "")
    return None


def _check_pattern(args: list[Any]) -> str | None:
    pattern = literal_text(args[1])
    if pattern is None:
        return "the regular expression must be a string literal"
    return _pattern_error(pattern)


REPLACE_OPTIONS = "gic"


def _check_replace(args: list[Any]) -> str | None:
    error = _check_pattern(args)
    if error:
        return error
    if literal_text(args[2]) is None:
        return "the replacement must be a string literal"
    if len(args) > 3:
        options = literal_text(args[3])
        if options is None or any(o not in REPLACE_OPTIONS for o in options):
            return f"REGEXP_REPLACE options must be a string literal of {', '.join(REPLACE_OPTIONS)}"
    return None


def _check_extract(args: list[Any]) -> str | None:
    from stream_dsl.ir.expr import Literal

    error = _check_pattern(args)
    if error is None and len(args) > 2:
        group = args[2].value if isinstance(args[2], Literal) else None
        if not isinstance(group, int) or not 0 <= group <= 9:  # DuckDB's range
            return "the group of REGEXP_EXTRACT must be an integer literal from 0 to 9"
    return error


def _check_separator(args: list[Any]) -> str | None:
    from stream_dsl.ir.expr import Literal

    if not isinstance(args[0], Literal):
        return "the separator of CONCAT_WS must be a literal"
    return None


def _value(e: pl.Expr) -> Any:
    return pl.select(e).item()


def _rows(*args: pl.Expr) -> pl.Expr:
    return pl.struct([a.alias(f"a{i}") for i, a in enumerate(args)])


def _per_row(fn: Callable[..., Any], *args: pl.Expr) -> pl.Expr:
    """`fn` over the values of each row, NULL where any is NULL (for what polars has no expression for)."""

    def each(rows: pl.Series) -> pl.Series:
        out = [None if None in (row := tuple(r.values())) else fn(*row) for r in rows.to_list()]
        return pl.Series(rows.name, out, dtype=pl.String)

    return _rows(*args).map_batches(each, return_dtype=pl.String, is_elementwise=True)


def regexp_matches(s: pl.Expr, pattern: pl.Expr) -> pl.Expr:
    return s.str.contains(rust_pattern(_value(pattern)))


def regexp_extract(s: pl.Expr, pattern: pl.Expr, group: pl.Expr | None = None) -> pl.Expr:
    index = 0 if group is None else _value(group)
    extracted = s.str.extract(rust_pattern(_value(pattern)), index)
    return pl.when(s.is_null()).then(None).otherwise(extracted.fill_null(""))  # no match: '' as in DuckDB


def regexp_replace(s: pl.Expr, pattern: pl.Expr, replacement: pl.Expr, options: pl.Expr | None = None) -> pl.Expr:
    flags = "" if options is None else _value(options) or ""
    regex = rust_pattern(_value(pattern))
    if "i" in flags and "c" not in flags[flags.index("i") :]:
        regex = "(?i)" + regex
    rewrite = rust_replacement(_value(replacement))
    return s.str.replace_all(regex, rewrite) if "g" in flags else s.str.replace(regex, rewrite, n=1)


def split_part(s: pl.Expr, delimiter: pl.Expr, index: pl.Expr) -> pl.Expr:
    """1-based; a negative index counts from the end; 0 or past the end is ''; an empty delimiter splits
    into characters (DuckDB)."""
    i = index.cast(pl.Int64)
    part = s.str.split(delimiter).list.get(pl.when(i > 0).then(i - 1).otherwise(i), null_on_oob=True)
    value = pl.when(i == 0).then(pl.lit("")).otherwise(part.fill_null(""))
    return pl.when(s.is_null() | delimiter.is_null() | i.is_null()).then(None).otherwise(value)


def concat_ws(separator: pl.Expr, *xs: pl.Expr) -> pl.Expr:
    """NULL arguments are skipped; a NULL separator gives NULL."""
    sep = _value(separator)
    if sep is None:
        return pl.repeat(None, pl.len(), dtype=pl.String)
    return pl.concat_str(list(xs), separator=str(sep), ignore_nulls=True)


def _pad(left: bool) -> Callable[[pl.Expr, pl.Expr, pl.Expr], pl.Expr]:
    def pad(s: pl.Expr, length: pl.Expr, fill: pl.Expr) -> pl.Expr:
        def one(text: str, n: int, chars: str) -> str | None:
            if n <= len(text):
                return text[: max(n, 0)]  # DuckDB truncates to the length (from the left, both pads)
            if not chars:
                return None  # flagged below: DuckDB's "Insufficient padding"
            padding = (chars * ((n - len(text)) // len(chars) + 1))[: n - len(text)]
            return padding + text if left else text + padding

        value = _per_row(one, s, length.cast(pl.Int64), fill)
        failed = value.is_null() & s.is_not_null() & length.is_not_null() & fill.is_not_null()
        name = "LPAD" if left else "RPAD"
        return fail_where(
            failed,
            s,
            value,
            lambda first, n: ValueError(f"{name}: padding of '' cannot lengthen '{first}' (Insufficient padding)"),
            pl.String(),
        )

    return pad


def repeat(s: pl.Expr, n: pl.Expr) -> pl.Expr:
    return _per_row(lambda text, times: text * max(times, 0), s, n.cast(pl.Int64))


def functions() -> list[Any]:
    from stream_dsl.ir.functions import ScalarFunction, _const

    string, boolean = _const(T.STRING), _const(T.BOOLEAN)
    return [
        ScalarFunction(
            "regexp_matches",
            ("string", "string"),
            boolean,
            regexp_matches,
            doc="whether the regular expression matches somewhere in the string",
            signature="regexp_matches(s STRING, pattern STRING literal) -> BOOLEAN",
            example="regexp_matches('abc', 'b.') = true (RE2 syntax; REGEXP_LIKE is the same)",
            check=_check_pattern,
        ),
        ScalarFunction(
            "regexp_extract",
            ("string", "string", "integer"),
            string,
            regexp_extract,
            min_args=2,
            doc="the first match (or its group), '' when nothing matches",
            signature="regexp_extract(s STRING, pattern STRING literal[, group BIGINT literal]) -> STRING",
            example="regexp_extract('a-42', '([a-z])-(\\d+)', 2) = '42'",
            check=_check_extract,
        ),
        ScalarFunction(
            "regexp_replace",
            ("string", "string", "string", "string"),
            string,
            regexp_replace,
            min_args=3,
            doc="the first match replaced (every match with option 'g')",
            signature="regexp_replace(s STRING, pattern STRING literal, replacement STRING literal"
            "[, options 'g' | 'i' | 'c']) -> STRING",
            example="regexp_replace('a1b2', '(\\d)', '<\\1>', 'g') = 'a<1>b<2>'",
            check=_check_replace,
        ),
        ScalarFunction(
            "split_part",
            ("string", "string", "integer"),
            string,
            split_part,
            doc="the index-th part of the string split at the delimiter (1-based; negative from the end)",
            example="split_part('a,b,c', ',', -1) = 'c'; split_part('a,b', ',', 5) = ''",
        ),
        ScalarFunction(
            "concat_ws",
            ("string", "any"),
            string,
            concat_ws,
            variadic=True,
            min_args=2,
            doc="the arguments joined by the separator, NULLs skipped",
            signature="concat_ws(separator STRING literal, value ANY, ...) -> STRING",
            example="concat_ws(',', 'a', NULL, 1) = 'a,1'",
            nulls="NULL arguments are skipped; a NULL separator gives NULL",
            check=_check_separator,
        ),
        ScalarFunction(
            "lpad",
            ("string", "integer", "string"),
            string,
            _pad(True),
            doc="the string padded on the left to the length (truncated when longer)",
            example="lpad('7', 3, '0') = '007'; lpad('abc', 2, 'x') = 'ab'",
        ),
        ScalarFunction(
            "rpad",
            ("string", "integer", "string"),
            string,
            _pad(False),
            doc="the string padded on the right to the length (truncated when longer)",
            example="rpad('ab', 5, 'xy') = 'abxyx'",
        ),
        ScalarFunction(
            "repeat",
            ("string", "integer"),
            string,
            repeat,
            doc="the string repeated n times ('' for n <= 0)",
            example="repeat('ab', 3) = 'ababab'",
        ),
        ScalarFunction(
            "reverse",
            ("string",),
            string,
            lambda s: s.str.reverse(),
            doc="the characters in reverse order (grapheme clusters kept whole)",
            example="reverse('héllo') = 'olléh'",
        ),
    ]


ALIASES = {"regexp_like": "regexp_matches"}  # DuckDB has no REGEXP_LIKE: the name other dialects use
