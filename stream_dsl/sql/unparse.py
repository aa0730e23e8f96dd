"""The one AST → SQL printer: `unparse(node)` gives text that parses back to an equal tree.

`parse_statement(unparse(s)) == s` for every statement the parser makes
(spans aside, which equality ignores), and `parse_expression(unparse(e)) == e`
for expressions. Parentheses appear only where the grammar's precedence
needs them (lowest first: OR; AND; NOT; comparison/IS/IN/BETWEEN/LIKE;
+ - ||; * / %; unary + -; primary), names are double-quoted only when they
are not plain names or could be read as keywords, and option values are
always written as strings (the parser keeps them as text anyway).

It serves the dataframe API's `Expr` repr, the REPL (the SET statements
its `\\set` command runs) and the parser's round-trip tests. `unparse` is a
pass with one case per AST node class (stream_dsl.ir.dispatch).

>>> from stream_dsl.sql.parser import parse_statement
>>> unparse(parse_statement("select a+1 as b from t where not (x or y) and z"))
'SELECT a + 1 AS b FROM t WHERE NOT (x OR y) AND z'
"""

from __future__ import annotations

import re
from typing import Any

from stream_dsl.ir.dispatch import MissingCase, node_pass
from stream_dsl.sql import ast

# Precedence levels of the grammar's expression rules, lowest first.
OR, AND, NOT, PREDICATE, SUM, PRODUCT, UNARY, PRIMARY = range(1, 9)
_BINARY_LEVEL = {
    "OR": OR,
    "AND": AND,
    "=": PREDICATE,
    "<>": PREDICATE,
    "<": PREDICATE,
    "<=": PREDICATE,
    ">": PREDICATE,
    ">=": PREDICATE,
    "+": SUM,
    "-": SUM,
    "||": SUM,
    "*": PRODUCT,
    "/": PRODUCT,
    "%": PRODUCT,
}

_PLAIN_NAME = re.compile(r"[^\W\d]\w*")
_OPTION_KEY = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*")


def _grammar_keywords() -> frozenset[str]:
    """Every keyword of the grammar (reserved or not): a name spelled like one is quoted, to be safe."""
    from pathlib import Path

    text = (Path(__file__).with_name("grammar.lark")).read_text(encoding="utf-8")
    words = set(re.findall(r"^[A-Z_]+\.2: /(\w+)", text, re.MULTILINE))
    reserved = re.search(r"\(\?!\(\?:([a-z|]+)\)", text)
    if reserved:
        words |= set(reserved.group(1).split("|"))
    return frozenset(w.lower() for w in words) | {"timestamp"}


KEYWORDS = _grammar_keywords()

# Every AST node class, for the dispatch coverage test.
AST_NODES: tuple[type, ...] = tuple(
    cls
    for cls in vars(ast).values()
    if isinstance(cls, type) and cls.__module__ == ast.__name__ and hasattr(cls, "__dataclass_fields__")
)


def name(text: str) -> str:
    """An identifier as SQL: bare when it is a plain name and no keyword, else double-quoted."""
    if _PLAIN_NAME.fullmatch(text) and text.lower() not in KEYWORDS:
        return text
    return '"' + text.replace('"', '""') + '"'


def string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _option_key(key: str) -> str:
    return key if _OPTION_KEY.fullmatch(key) and key.lower() not in KEYWORDS else string(key)


def _options(options: tuple[tuple[str, str], ...]) -> str:
    return " WITH (" + ", ".join(f"{_option_key(k)} = {string(v)}" for k, v in options) + ")"


# ---------------------------------------------------------------- the pass


@node_pass("ast")
def unparse(node: Any) -> str:
    """SQL text of an AST node (statement, query, clause or expression) that parses back to `node`."""
    raise MissingCase(unparse, node)


def unparse_script(statements: list[ast.Statement]) -> str:
    """Statements as one script, separated by `;`."""
    return ";\n".join(unparse(s) for s in statements)


def level(node: Any) -> int:
    """The precedence level of an expression node (PRIMARY for everything that needs no parentheses)."""
    if isinstance(node, ast.BinaryOp):
        return _BINARY_LEVEL[node.op]
    if isinstance(node, ast.UnaryOp):
        return NOT if node.op == "NOT" else UNARY
    if isinstance(node, (ast.IsNull, ast.InList, ast.Between, ast.Like)):
        return PREDICATE
    return PRIMARY


def _at(node: ast.Expr, minimum: int) -> str:
    """`node`'s text, parenthesized when it binds more loosely than `minimum` allows."""
    text = unparse(node)
    return f"({text})" if level(node) < minimum else text


def _not(negated: bool) -> str:
    return "NOT " if negated else ""


# ---------------------------------------------------------------- expressions


@unparse.register
def _(node: ast.Identifier) -> str:
    return ".".join(name(p) for p in node.parts)


@unparse.register
def _(node: ast.Star) -> str:
    return f"{name(node.qualifier)}.*" if node.qualifier else "*"


@unparse.register
def _(node: ast.NumberLit) -> str:
    return repr(node.value)


@unparse.register
def _(node: ast.StringLit) -> str:
    return string(node.value)


@unparse.register
def _(node: ast.BoolLit) -> str:
    return "TRUE" if node.value else "FALSE"


@unparse.register
def _(node: ast.NullLit) -> str:
    return "NULL"


@unparse.register
def _(node: ast.IntervalLit) -> str:
    return f"INTERVAL {string(node.value)}" + (f" {node.unit}" if node.unit else "")


@unparse.register
def _(node: ast.TimestampLit) -> str:
    return f"TIMESTAMP {string(node.value)}"


@unparse.register
def _(node: ast.DateLit) -> str:
    return f"DATE {string(node.value)}"


@unparse.register
def _(node: ast.BinaryOp) -> str:
    own = level(node)
    return f"{_at(node.left, own)} {node.op} {_at(node.right, own + 1)}"


@unparse.register
def _(node: ast.UnaryOp) -> str:
    return f"{node.op} {_at(node.operand, level(node))}"  # the space keeps `- -x` from becoming a comment


@unparse.register
def _(node: ast.FuncCall) -> str:
    inner = "*" if node.star else ", ".join(unparse(a) for a in node.args)
    return f"{name(node.name)}({'DISTINCT ' if node.distinct else ''}{inner})"


@unparse.register
def _(node: ast.WindowCall) -> str:
    parts = [f"PARTITION BY {', '.join(unparse(p) for p in node.partition_by)}"] if node.partition_by else []
    parts += [f"ORDER BY {', '.join(unparse(o) for o in node.order_by)}"] if node.order_by else []
    return f"{unparse(node.func)} OVER ({' '.join(parts)})"


@unparse.register
def _(node: ast.Case) -> str:
    parts = ["CASE"] + ([unparse(node.operand)] if node.operand is not None else [])
    parts += [f"WHEN {unparse(c)} THEN {unparse(v)}" for c, v in node.whens]
    parts += [f"ELSE {unparse(node.else_)}"] if node.else_ is not None else []
    return " ".join(parts + ["END"])


@unparse.register
def _(node: ast.TypeName) -> str:
    if node.name == "ARRAY":
        return f"{unparse(node.members[0])}[]"
    if node.name == "STRUCT":
        return f"STRUCT({', '.join(f'{name(n)} {unparse(t)}' for n, t in zip(node.field_names, node.members))})"
    if node.name == "MAP":
        return f"MAP({unparse(node.members[0])}, {unparse(node.members[1])})"
    return node.name + (f"({', '.join(map(str, node.numbers))})" if node.numbers else "")


@unparse.register
def _(node: ast.Cast) -> str:
    return f"CAST({unparse(node.expr)} AS {unparse(node.type_name)})"


@unparse.register
def _(node: ast.InList) -> str:
    return f"{_at(node.expr, PREDICATE)} {_not(node.negated)}IN ({', '.join(unparse(i) for i in node.items)})"


@unparse.register
def _(node: ast.Between) -> str:
    return f"{_at(node.expr, PREDICATE)} {_not(node.negated)}BETWEEN {_at(node.low, SUM)} AND {_at(node.high, SUM)}"


@unparse.register
def _(node: ast.Like) -> str:
    return f"{_at(node.expr, PREDICATE)} {_not(node.negated)}LIKE {_at(node.pattern, SUM)}"


@unparse.register
def _(node: ast.IsNull) -> str:
    return f"{_at(node.expr, PREDICATE)} IS {_not(node.negated)}NULL"


# ---------------------------------------------------------------- queries


@unparse.register
def _(node: ast.SelectItem) -> str:
    return unparse(node.expr) + (f" AS {name(node.alias)}" if node.alias else "")


@unparse.register
def _(node: ast.TableRef) -> str:
    return name(node.name) + (f" AS {name(node.alias)}" if node.alias else "")


@unparse.register
def _(node: ast.SubqueryRef) -> str:
    return f"({unparse(node.query)})" + (f" AS {name(node.alias)}" if node.alias else "")


@unparse.register
def _(node: ast.WindowTVF) -> str:
    table = f"TABLE {unparse(node.table)}"  # a TableRef in a TVF has no alias; a SubqueryRef is parenthesized
    if node.partition_by:
        keys = ", ".join(unparse(k) for k in node.partition_by)
        table += f" PARTITION BY {keys if len(node.partition_by) == 1 else f'({keys})'}"
    args = [table, f"DESCRIPTOR({unparse(node.time_column)})", *(unparse(s) for s in node.sizes)]
    return f"TABLE({node.kind}({', '.join(args)}))" + (f" AS {name(node.alias)}" if node.alias else "")


@unparse.register
def _(node: ast.Unnest) -> str:
    text = f"UNNEST({unparse(node.expr)})" + (" WITH ORDINALITY" if node.ordinality else "")
    if node.alias:
        text += f" AS {name(node.alias)}"
        text += f"({', '.join(name(c) for c in node.columns)})" if node.columns else ""
    return text


@unparse.register
def _(node: ast.Join) -> str:
    kind = "JOIN" if node.kind == "INNER" else f"{node.kind} JOIN"
    right = f"({unparse(node.right)})" if isinstance(node.right, ast.Join) else unparse(node.right)
    if node.kind == "CROSS":
        return f"{unparse(node.left)} {kind} {right}"
    if node.using is not None:
        condition = f"USING ({', '.join(name(c) for c in node.using)})"
    else:
        condition = f"ON {unparse(node.on)}"
    return f"{unparse(node.left)} {kind} {right} {condition}"


@unparse.register
def _(node: ast.Select) -> str:
    parts = ["SELECT DISTINCT" if node.distinct else "SELECT", ", ".join(unparse(i) for i in node.items)]
    if node.from_ is not None:
        parts.append(f"FROM {unparse(node.from_)}")
    if node.where is not None:
        parts.append(f"WHERE {unparse(node.where)}")
    if node.group_by:
        parts.append(f"GROUP BY {', '.join(unparse(g) for g in node.group_by)}")
    if node.having is not None:
        parts.append(f"HAVING {unparse(node.having)}")
    if node.qualify is not None:
        parts.append(f"QUALIFY {unparse(node.qualify)}")
    if node.emit == "CHANGES":
        parts.append("EMIT CHANGES")
    elif node.emit is not None:
        parts.append("EMIT ON WINDOW CLOSE")
    return " ".join(parts)


def _term(body: Any) -> str:
    """A query term: a SELECT as is, anything else in parentheses."""
    return unparse(body) if isinstance(body, ast.Select) else f"({unparse(body)})"


@unparse.register
def _(node: ast.SetOp) -> str:
    left = unparse(node.left) if isinstance(node.left, (ast.Select, ast.SetOp)) else _term(node.left)
    return f"{left} UNION {'ALL ' if node.all else ''}{_term(node.right)}"


@unparse.register
def _(node: ast.OrderItem) -> str:
    return unparse(node.expr) + (" DESC" if node.descending else "") + (" NULLS FIRST" if node.nulls_first else "")


@unparse.register
def _(node: ast.Query) -> str:
    parts = []
    if node.ctes:
        parts.append("WITH " + ", ".join(f"{name(n)} AS ({unparse(q)})" for n, q in node.ctes))
    parts.append(unparse(node.body) if isinstance(node.body, (ast.Select, ast.SetOp)) else _term(node.body))
    if node.order_by:
        parts.append("ORDER BY " + ", ".join(unparse(o) for o in node.order_by))
    if node.limit is not None:
        parts.append(f"LIMIT {node.limit}")
    return " ".join(parts)


# ---------------------------------------------------------------- statements


@unparse.register
def _(node: ast.ColumnDef) -> str:
    return f"{name(node.name)} {unparse(node.type_name)}" + (" NOT NULL" if node.not_null else "")


@unparse.register
def _(node: ast.WatermarkDef) -> str:
    return f"WATERMARK FOR {name(node.column)} AS {unparse(node.expr)}"


def _create(kind: str, or_replace: bool, if_not_exists: bool, what: str) -> str:
    return f"CREATE {'OR REPLACE ' if or_replace else ''}{kind} {'IF NOT EXISTS ' if if_not_exists else ''}{name(what)}"


@unparse.register
def _(node: ast.CreateSource) -> str:
    text = _create(node.kind, node.or_replace, node.if_not_exists, node.name)
    elements = [unparse(c) for c in node.columns] + ([unparse(node.watermark)] if node.watermark else [])
    if elements:
        text += f" ({', '.join(elements)})"
    return text + (_options(node.options) if node.options else "")


@unparse.register
def _(node: ast.CreateSink) -> str:
    return _create("SINK", node.or_replace, node.if_not_exists, node.name) + _options(node.options)


@unparse.register
def _(node: ast.CreateView) -> str:
    return f"CREATE {'OR REPLACE ' if node.or_replace else ''}VIEW {name(node.name)} AS {unparse(node.query)}"


@unparse.register
def _(node: ast.Insert) -> str:
    return f"INSERT INTO {name(node.sink)} {unparse(node.query)}"


@unparse.register
def _(node: ast.QueryStatement) -> str:
    return unparse(node.query)


@unparse.register
def _(node: ast.Explain) -> str:
    return f"EXPLAIN {'ANALYZE ' if node.analyze else ''}{unparse(node.statement)}"


@unparse.register
def _(node: ast.Show) -> str:
    return f"SHOW {node.what}"


@unparse.register
def _(node: ast.Describe) -> str:
    kind = "FUNCTION " if node.function else "QUERY " if node.query else ""
    return f"DESCRIBE {kind}{name(node.name)}"


@unparse.register
def _(node: ast.StopQuery) -> str:
    return f"STOP QUERY {name(node.name)}"


@unparse.register
def _(node: ast.SetOption) -> str:
    return f"SET {node.key} = {string(node.value)}"


@unparse.register
def _(node: ast.Drop) -> str:
    return f"DROP {node.kind} {'IF EXISTS ' if node.if_exists else ''}{name(node.name)}"
