"""The sections of the reference page, each rendered from the registries `gen_reference.py` loads.

Pure text generation: nothing here imports the engine. `Registries` is what
a section may read; `docs/gen_reference.py` fills it (the one place that
knows where each registry lives) and joins the sections into the page.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any
from unittest.mock import patch


@dataclass(frozen=True)
class Registries:
    grammar: str
    scalar_functions: dict[str, Any]
    function_aliases: dict[str, str]
    aggregate_functions: dict[str, Callable[[Any], Any]]
    aggregate_aliases: dict[str, str]
    window_functions: tuple[str, ...]
    api: ModuleType  # `stream_dsl`: the dataframe API's functions (sd.tumble, sd.count, ...)
    data_type: Any  # stream_dsl.ir.types.DataType
    type_names: dict[str, Any]
    common_type: Callable[[list[Any]], Any]
    connectors: dict[str, str]
    common_options: frozenset[str]
    settings: tuple[str, ...]
    run_config: type
    context: type
    executors: tuple[str, ...]
    transports: list[str]
    cli_parser: argparse.ArgumentParser
    rules: tuple[Callable[..., Any], ...]  # the optimizer's RULES, in the order the driver runs them
    files: dict[str, str]  # what -> the repository path that declares it, for the page's prose


# ---- statements


def grammar_rules(grammar: str) -> dict[str, str]:
    """Rule name -> its definition text (the rule line and its `|` continuation lines), comments dropped."""
    rules: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in grammar.splitlines():
        code = line.split("//", 1)[0].rstrip()
        head = re.match(r"^[?!]?([a-z_][a-z0-9_]*)\s*:", code)
        if head:
            current = rules.setdefault(head.group(1), [])
            current.append(code)
        elif current is not None and code.startswith((" ", "\t")) and code.strip():
            current.append(code)
        else:
            current = None
    return {name: "\n".join(lines) for name, lines in rules.items()}


def statement_rules(grammar: str) -> list[str]:
    """The alternatives of the grammar's `statement` rule, in order."""
    body = grammar_rules(grammar)["statement"].split(":", 1)[1]
    return [alt.strip() for alt in body.split("|") if alt.strip()]


def render_statements(reg: Registries) -> str:
    rules = grammar_rules(reg.grammar)
    out = [
        "## SQL statements\n",
        (
            "Statements end with `;` in scripts and the REPL. Each one below is an alternative of the grammar's "
            f"`statement` rule, shown as the grammar (`{reg.files['grammar']}`, lark EBNF: `[x]` optional, "
            "`(a | b)` a choice, `x*` repeated, upper case a keyword) states it; the "
            "[full grammar](#grammar) is at the end.\n"
        ),
    ]
    for name in statement_rules(reg.grammar):
        out.append(f"### `{name}`\n\n```text\n{rules.get(name, name)}\n```\n")
    return "\n".join(out)


def render_grammar(reg: Registries) -> str:
    return f"## Grammar\n\nThe whole grammar, as the parser loads it.\n\n```text\n{reg.grammar.rstrip()}\n```\n"


# ---- types


def render_types(reg: Registries) -> str:
    out = [
        "## Types\n",
        (
            "Type names a column definition or CAST accepts (any case), and the polars dtype of each "
            "type inside the engine.\n"
        ),
        "| type | also spelled | polars |",
        "|---|---|---|",
    ]
    for dtype in dict.fromkeys(reg.type_names.values()):
        names = [n for n, t in reg.type_names.items() if t is dtype]
        if not names:
            continue
        canonical = dtype.value if dtype.value in names else names[0]
        others = ", ".join(f"`{n}`" for n in names if n != canonical)
        out.append(f"| `{canonical}` | {others} | `{dtype.polars}` |")
    out.append(
        "| `DECIMAL(p, s)` (exact; 1 <= p <= 38, 0 <= s <= p; `DECIMAL` alone is `DECIMAL(18,3)`) "
        "| `NUMERIC(p, s)` | `Decimal(p, s)` |"
    )
    out.append("| `T[]` (a list of T, any type T) | `ARRAY<T>`, `LIST<T>` | `List(T)` |")
    return "\n".join(out) + "\n"


# ---- functions


_SAMPLES = {
    "numeric": ("INT", "BIGINT", "DOUBLE"),
    "string": ("STRING",),
    "timestamp": ("TIMESTAMP",),
    "integer": ("INT", "BIGINT"),
    "interval": ("INTERVAL",),
    "any": ("BIGINT", "STRING"),
    "list": ("LIST_BIGINT", "LIST_STRING"),
}


def signature(fn: Any) -> str:
    """`substring(string, numeric[, numeric])`, `concat(any, ...)` from a ScalarFunction's arg kinds."""
    low = len(fn.args) if fn.min_args is None else fn.min_args
    required, optional = list(fn.args[:low]), list(fn.args[low:])
    text = ", ".join(required)
    for kind in optional:
        text += f"[, {kind}]" if text else f"[{kind}]"
    if fn.variadic:
        text += ", ..."
    return f"{fn.name}({text})"


def _probes(fn: Any, reg: Registries) -> list[list[Any]]:
    """Argument type lists to ask a function's type rule about: each sample, and a mix of numeric types."""
    T = reg.data_type
    if not fn.args:  # NOW()
        return [[]]
    arity = max(len(fn.args), fn.min_args or 0, 2 if fn.variadic else 0) or 1
    kinds = [fn.args[min(i, len(fn.args) - 1)] for i in range(arity)]
    width = max(len(_SAMPLES[k]) for k in kinds)
    probes = [[getattr(T, _SAMPLES[k][i % len(_SAMPLES[k])]) for k in kinds] for i in range(width)]
    if arity > 1 and all(k in ("numeric", "any") for k in kinds):
        probes.append([T.INT] + [T.DOUBLE] * (arity - 1))
    return probes


def result_type(fn: Any, reg: Registries) -> str:
    """The result type, by asking the function's own type rule (never guessed)."""
    probes = _probes(fn, reg)
    results = [fn.returns(list(p)) for p in probes]
    if len(set(results)) == 1:
        return str(results[0].value)
    if all(r == p[0] for r, p in zip(results, probes, strict=True)):
        return "type of the argument" if len(fn.args) == 1 and not fn.variadic else "type of the first argument"
    if all(r == reg.common_type(list(p)) for r, p in zip(results, probes, strict=True)):
        return "common type of the arguments"
    return ", ".join(f"({', '.join(t.value for t in p)}) → {r.value}" for p, r in zip(probes, results, strict=True))


def _aliases(target: str, aliases: dict[str, str]) -> str:
    return ", ".join(f"`{a}`" for a, t in sorted(aliases.items()) if t == target)


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) if obj is not None else None
    return doc.splitlines()[0] if doc else ""


def table_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_functions(reg: Registries) -> str:
    T = reg.data_type
    out = [
        "## Functions\n",
        (
            f"The function registry (`{reg.files['functions']}`); `SHOW FUNCTIONS` lists the same names. "
            "Argument kinds: `numeric` (INT, BIGINT, DOUBLE), `integer` (INT, BIGINT), `string`, `timestamp`, "
            "`interval`, `any`; `[, x]` is optional "
            "and `, ...` repeats the last kind. Result types come from each function's own type rule.\n"
        ),
        "### Scalar functions\n",
        "| function | returns | also spelled | description |",
        "|---|---|---|---|",
    ]
    for name in sorted(reg.scalar_functions):
        fn = reg.scalar_functions[name]
        out.append(
            f"| `{signature(fn)}` | {table_cell(result_type(fn, reg))} | "
            f"{_aliases(name, reg.function_aliases)} | {table_cell(fn.doc)} |"
        )
    out += [
        "",
        "### Aggregate functions\n",
        (
            "Result types for numeric arguments, from the registry's type rule; "
            "`COUNT(*)` counts rows and `COUNT(DISTINCT x)` distinct values.\n"
        ),
        "| function | returns | also spelled | description |",
        "|---|---|---|---|",
    ]
    numeric = (T.INT, T.BIGINT, T.DOUBLE)
    for name in sorted(reg.aggregate_functions):
        rule = reg.aggregate_functions[name]
        results = [rule(t) for t in numeric]
        if len(set(results)) == 1:
            returns = results[0].value
        elif results == list(numeric):
            returns = "type of the argument"
        else:
            returns = ", ".join(f"{t.value} → {r.value}" for t, r in zip(numeric, results, strict=True))
        call = f"{name}(*), {name}(x)" if name == "count" else f"{name}(x)"
        out.append(
            f"| `{call}` | {table_cell(returns)} | {_aliases(name, reg.aggregate_aliases)} | "
            f"{table_cell(_first_line(getattr(reg.api, name, None)))} |"
        )
    out += [
        "",
        "### Window functions\n",
        (
            "Valid only in `GROUP BY`; each adds the columns `window_start` (inclusive) and `window_end` "
            "(exclusive). The signature is the dataframe API's function of the same name.\n"
        ),
        "| function | dataframe API | description |",
        "|---|---|---|",
    ]
    for name in reg.window_functions:
        api = getattr(reg.api, name, None)
        params = ", ".join(inspect.signature(api).parameters) if api else ""
        out.append(f"| `{name.upper()}({params})` | `sd.{name}({params})` | {table_cell(_first_line(api))} |")
    return "\n".join(out) + "\n"


# ---- connectors

# Module attributes a connector declares its option names in, and the roles they apply to.
_OPTION_ATTRIBUTES = {
    "SOURCE_OPTIONS": ("stream", "table"),
    "SINK_OPTIONS": ("sink",),
    "OPTIONS": ("stream", "table", "sink"),
}
_ROLES = {"make_source": "stream", "make_table": "table", "make_sink": "sink"}


@dataclass(frozen=True)
class ConnectorInfo:
    name: str
    module: str
    roles: tuple[str, ...]
    options: dict[str, tuple[str, ...]]  # option name -> the roles it applies to
    doc: str
    error: str = ""


def connector_info(name: str, module_path: str) -> ConnectorInfo:
    """What a connector module declares: its roles (make_source/make_table/make_sink) and option names."""

    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        return ConnectorInfo(name, module_path, (), {}, "", error=f"not importable here: {exc}")
    roles = tuple(role for attr, role in _ROLES.items() if hasattr(module, attr))
    options: dict[str, tuple[str, ...]] = {}
    for attr, applies in _OPTION_ATTRIBUTES.items():
        for option in getattr(module, attr, None) or ():
            known = options.get(option, ())
            options[option] = known + tuple(r for r in roles if r in applies and r not in known)
    return ConnectorInfo(name, module_path, roles, options, inspect.getdoc(module) or "")


def markdown_text(doc: str) -> str:
    """A docstring as Markdown: `<` and `>` outside code spans escaped, a blank line before a list."""
    lines: list[str] = []
    for raw in doc.splitlines():
        pieces = re.split(r"(`[^`]*`)", raw)
        line = "".join(p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;") for p in pieces)
        if (
            line.lstrip().startswith("- ")
            and lines
            and lines[-1].strip()
            and not lines[-1].lstrip().startswith("- ")
            and not lines[-1].startswith("  ")
        ):
            lines.append("")
        lines.append(line)
    return "\n".join(lines)


def render_connectors(reg: Registries) -> str:
    out = [
        "## Connectors\n",
        f"The connector registry (`{reg.files['connectors']}`): `WITH (connector = 'name', ...)` "
        "picks the module. Every source and sink also takes the common options: "
        + ", ".join(f"`{o}`" for o in sorted(reg.common_options))
        + ". A connector refuses an option it does not declare, naming the closest known ones.\n",
    ]
    for name in sorted(reg.connectors):
        info = connector_info(name, reg.connectors[name])
        out.append(f"### `{name}`\n")
        if info.error:
            out.append(f"`{info.module}`: {info.error}\n")
            continue
        out.append(f"Module `{info.module}`; used as: {', '.join(info.roles)}.\n")
        if info.options:
            out += ["| option | applies to |", "|---|---|"]
            out += [f"| `{option}` | {', '.join(applies)} |" for option, applies in info.options.items()]
            out.append("")
        else:
            out.append("This module declares no option names (it does not check its options).\n")
        out.append(markdown_text(info.doc) + "\n")
    return "\n".join(out)


# ---- SET keys


def parameter_docs(cls: type) -> dict[str, tuple[str, str]]:
    """A numpydoc `Parameters` section: name -> (type text, description)."""
    doc = inspect.getdoc(cls) or ""
    section = re.search(r"^Parameters\n-+\n(.*?)(?=^\S[^\n]*\n-+\n|\Z)", doc, re.MULTILINE | re.DOTALL)
    params: dict[str, tuple[str, str]] = {}
    if not section:
        return params
    for match in re.finditer(r"^(\w+) : ([^\n]*)\n((?:[ \t]+[^\n]*\n?)*)", section.group(1), re.MULTILINE):
        params[match.group(1)] = (match.group(2).strip(), " ".join(match.group(3).split()))
    return params


def render_settings(reg: Registries) -> str:
    docs = parameter_docs(reg.context)
    defaults = {f.name: f.default for f in fields(reg.run_config)}
    choices = {"executor": reg.executors, "transport": tuple(reg.transports)}
    out = [
        "## SET keys\n",
        (
            "`SET key = 'value'` changes a setting of the Context for the queries that follow; "
            "the keys are the binder's `SETTINGS`, and each is also a parameter of `sd.Context(...)`. "
            "Defaults are `RunConfig`'s.\n"
        ),
        "| key | value (as the Context parameter) | default | description |",
        "|---|---|---|---|",
    ]
    for key in reg.settings:
        field = next((f for f in defaults if f == key or f.startswith(key + "_")), None)
        default = "" if field is None else f"`{defaults[field]!r}`" + ("" if field == key else f" ({field})")
        kind, text = docs.get(key, ("", ""))
        if key in choices:
            kind = " \\| ".join(f"`{c}`" for c in choices[key])
        out.append(f"| `{key}` | {table_cell(kind) if key not in choices else kind} | {default} | {table_cell(text)} |")
    return "\n".join(out) + "\n"


# ---- optimizer rules


def render_rules(reg: Registries) -> str:
    out = [
        "## Optimizer rules\n",
        (
            "The rewrite rules in the order the optimizer runs them, to a fixed point (`RULES`); each is one "
            "module of `optimizer/rules/`, whose docstring states its correctness condition and shows a "
            "before/after example. `sd.Context(optimize=False)` turns them all off.\n"
        ),
        "| rule | what it does |",
        "|---|---|",
    ]
    for rule in reg.rules:
        module = sys.modules.get(rule.__module__)
        out.append(f"| `{rule.__name__}` | {table_cell(_first_line(module))} |")
    return "\n".join(out) + "\n"


# ---- command line


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def cli_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command and sub-command, depth first: ('bench ysb', its parser), ..."""
    result = []
    for name, sub in _subcommands(parser).items():
        result.append((f"{prefix}{name}", sub))
        result += cli_commands(sub, f"{prefix}{name} ")
    return result


def render_cli(reg: Registries) -> str:
    out = ["## Command line\n", "`stream-dsl` (also `python -m stream_dsl`), as its parser describes itself.\n"]
    with patch.dict(os.environ, {"COLUMNS": "100"}):  # argparse wraps help to $COLUMNS: the same page everywhere
        out.append(f"```text\n{reg.cli_parser.format_help().rstrip()}\n```\n")
        for name, sub in cli_commands(reg.cli_parser):
            out.append(f"### `stream-dsl {name}`\n\n```text\n{sub.format_help().rstrip()}\n```\n")
    return "\n".join(out)
