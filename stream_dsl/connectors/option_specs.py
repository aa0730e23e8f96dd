"""Each connector's WITH options, declared once: name, type, whether required, default, and a line of doc.

A connector module lists its options as `OPTION_SPECS = {"source": (...), "table": (...), "sink": (...)}`
of `Option`s. Three readers use the one declaration, so they cannot drift apart:

- `CREATE STREAM/TABLE/SINK` checks the options before the catalog takes them (`bind/create_check.py`):
  an unknown option (with "did you mean"), a required one missing, a value of the wrong type;
- the connector, when a query opens it, reads the typed values (`check_options`);
- docs/connectors.md's option reference is generated from them (`python -m stream_dsl.connectors.option_specs`;
  a test keeps the page and the declarations equal).

Values arrive as text (`watch = 'true'`); `parse_value` turns one into its Python value with the same
rules (and messages) as the `as_*` readers in `options.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from stream_dsl.connectors.options import (
    COMMON_OPTIONS,
    as_bool,
    as_duration_ms,
    as_int,
    as_positive_rate,
    as_size_bytes,
)
from stream_dsl.errors import ConnectorError, did_you_mean

TYPES = ("string", "bool", "int", "duration", "size", "rate", "seconds", "char", "choice")
ROLES = ("source", "table", "sink")


@dataclass(frozen=True, slots=True)
class Option:
    """One WITH option of a connector. `default` is the text the connector uses when it is not given."""

    name: str
    type: str
    doc: str
    required: bool = False
    default: str | None = None
    minimum: int | None = None  # int: the smallest value allowed
    choices: tuple[str, ...] = ()  # choice: the values allowed (any case)

    def __post_init__(self) -> None:
        assert self.type in TYPES, self.type
        assert (self.type == "choice") == bool(self.choices), self.name

    @property
    def type_text(self) -> str:
        """The type as the docs and the messages say it."""
        if self.type == "choice":
            return ", ".join(self.choices)
        if self.type == "int" and self.minimum is not None:
            return f"int >= {self.minimum}"
        return self.type


class OptionError(ConnectorError):
    """A WITH option that is wrong: `key` names it (None: the clause as a whole); `at_value`: its value is."""

    def __init__(self, message: str, key: str | None = None, *, at_value: bool = False) -> None:
        self.message = message
        self.key = key
        self.at_value = at_value
        super().__init__(message)


# Options every connector takes (see options.COMMON_OPTIONS); most are read and checked by the executors.
COMMON_SPECS: tuple[Option, ...] = (
    Option("connector", "string", "which connector reads or writes (files, kafka, redis, ...)"),
    Option("dead_letter", "string", "where unreadable records go: a file path, a sink's name, or 'none'"),
    Option("late_rows", "string", "the sink a windowed aggregate's late rows go to, with their lateness"),
    Option("realtime", "bool", "pace the source to the wall clock (generator)"),
    Option("ndv", "string", "the optimizer's distinct-value counts, 'col=N, ...'"),
    Option("rows_per_batch", "int", "the optimizer's rows per batch", minimum=0),
    Option("timestamp_unit", "string", "the epoch unit numeric timestamps are in: 'unit' or 'col=unit, ...'"),
    Option("splits", "string", "read the stream as N parts (a number or 'workers'); connectors that can"),
)
assert {o.name for o in COMMON_SPECS} == set(COMMON_OPTIONS)


def option_names(specs: Iterable[Option]) -> tuple[str, ...]:
    return tuple(o.name for o in specs)


def parse_value(option: Option, value: str, what: str) -> Any:
    """`value` (the text written) as the option's Python value; OptionError (at the value) if it is not one."""
    key = option.name
    try:
        if option.type == "bool":
            return as_bool(value, key=key, what=what)
        if option.type == "int":
            return as_int(value, key=key, what=what, minimum=option.minimum)
        if option.type == "duration":
            return as_duration_ms(value, key=key, what=what)
        if option.type == "size":
            return as_size_bytes(value, key=key, what=what)
        if option.type == "rate":
            return as_positive_rate(value, key=key, what=what)
    except ConnectorError as e:
        raise OptionError(str(e), key, at_value=True) from None
    if option.type == "seconds":
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0:
            raise OptionError(
                f"{what}: option {key} must be a number of seconds >= 0, got '{value}'", key, at_value=True
            )
        return seconds
    if option.type == "char" and len(value) != 1:
        raise OptionError(f"{what}: option {key} must be a single character, got '{value}'", key, at_value=True)
    if option.type == "choice":
        lowered = value.strip().lower()
        if lowered not in option.choices:
            raise OptionError(
                f"{what}: option {key} must be one of {', '.join(option.choices)}, got '{value}'"
                f"{did_you_mean(lowered, option.choices)}",
                key,
                at_value=True,
            )
        return lowered
    return value


def check_options(options: Iterable[tuple[str, str]], specs: Iterable[Option], *, what: str) -> dict[str, Any]:
    """Every option checked against the declarations: typed values by name, defaults filled in.

    Unknown options (naming the closest known ones), required ones missing and values of the wrong type
    raise OptionError; a connector's own rules beyond its types (a path that exists) are its own.
    """
    declared = {o.name: o for o in (*specs, *COMMON_SPECS)}
    given = dict(options)
    for key in given:
        if key not in declared:
            known = sorted(declared)
            raise OptionError(
                f"{what}: unknown option '{key}'{did_you_mean(key, known)}; known options: {', '.join(known)}", key
            )
    values: dict[str, Any] = {}
    for name, option in declared.items():
        text = given.get(name, option.default)
        if text is None:
            if option.required:
                raise OptionError(f"{what}: option '{name}' is required ({option.doc})")
            values[name] = None
            continue
        values[name] = parse_value(option, text, what)
    return values


def connector_specs(module: Any, role: str) -> tuple[Option, ...] | None:
    """The options `module` declares for `role` (source, table or sink); None when it declares none."""
    specs: Mapping[str, tuple[Option, ...]] | None = getattr(module, "OPTION_SPECS", None)
    if specs is None or role not in specs:
        return None
    return specs[role]


# ---------------------------------------------------------------- the docs' option reference

REFERENCE_HEADING = "## Option reference"


def reference_markdown() -> str:
    """docs/connectors.md's option reference: a table per connector and role, from the declarations."""
    import importlib

    from stream_dsl.connectors import CONNECTORS

    parts = [
        REFERENCE_HEADING,
        "",
        "Generated from each connector's `OPTION_SPECS` (`python -m stream_dsl.connectors.option_specs`);",
        "`CREATE STREAM/TABLE/SINK` checks names, types and required options against them and points at the option",
        "at fault (with the closest known names for a misspelled one). For a bounded files source (no",
        "`watch = 'true'`, or a TABLE) it also checks that the path names files and that the format reads the first",
        "one; a watched path may not exist yet. `Context(check_files=False)` skips these file checks (a script",
        "planned where its data is not). Connectors without declarations (`memory`) check their options when a",
        "query opens them. A files CREATE without a column list takes the columns from the first file",
        "([language](language.md#checked-at-create-columns-from-files-select-without-from)).",
        "Every connector also takes the common options:",
        "",
        *_table(COMMON_SPECS),
    ]
    for name in sorted(CONNECTORS):
        module = importlib.import_module(CONNECTORS[name])
        for role in ROLES:
            specs = connector_specs(module, role)
            if not specs:
                continue  # none declared (memory), or none taken (one_row)
            parts += ["", f"### `{name}` {role}", "", *_table(specs)]
    return "\n".join(parts) + "\n"


def _table(specs: Iterable[Option]) -> list[str]:
    rows = ["| option | type | required | default | meaning |", "|---|---|---|---|---|"]
    for o in specs:
        default = f"`{o.default}`" if o.default is not None else ""
        rows.append(f"| `{o.name}` | {o.type_text} | {'yes' if o.required else ''} | {default} | {o.doc} |")
    return rows


if __name__ == "__main__":
    print(reference_markdown(), end="")
