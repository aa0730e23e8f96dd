"""Parser fuzzing: whatever the text, only ParseError escapes the parser."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_dsl.sql import ast
from stream_dsl.errors import ParseError, PositionedError
from stream_dsl.sql.parser import parse, parse_expression, parse_statement
from budget import examples

CORPUS_FILE = Path(__file__).parent / "parse_corpus" / "valid.sql"
STATEMENTS = [block for block in CORPUS_FILE.read_text(encoding="utf-8").split("\n;\n")
              if "-- expect:" in block]

# Rough SQL tokens: words, numbers, strings, quoted names, comments, operators, spaces.
TOKEN = re.compile(r"""--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\w+|::|\|\||<>|!=|<=|>=|\s+|.""",
                   re.DOTALL)

EXTRA_TOKENS = [
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "JOIN", "ON", "USING", "UNION", "ALL", "WITH", "AS",
    "NOT", "NULL", "IS", "IN", "BETWEEN", "AND", "OR", "LIKE", "CASE", "WHEN", "THEN", "ELSE",
    "END", "CAST", "INTERVAL", "TIMESTAMP", "EMIT", "WINDOW", "CLOSE", "CHANGES", "LIMIT",
    "CREATE", "STREAM", "TABLE", "SINK", "VIEW", "WATERMARK", "FOR", "DROP", "SHOW", "SET",
    "(", ")", ",", ";", ".", "*", "+", "-", "/", "%", "=", "<", ">", "<>", "::", "||", "'",
    '"', "`", "/*", "*/", "--", "'x'", "1", "1.5e3", "x", "\n", " ", "\t", "\x00", "é", "€",
]

settings.register_profile("parser-fuzz", max_examples=examples(300), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings.get_profile("parser-fuzz")


def only_parse_errors(function: Callable[[str], object], text: str) -> None:
    """Call the parser; a ParseError is fine, anything else fails the test."""
    try:
        function(text)
    except BaseException as exc:  # noqa: BLE001 - the point is to see everything
        if not isinstance(exc, ParseError):
            raise
        assert isinstance(exc, PositionedError)
        assert exc.line is not None and exc.line >= 1
        assert exc.column is not None and exc.column >= 1
        str(exc)  # rendering the caret must not fail either


def check_all(text: str) -> None:
    for function in (parse, parse_statement, parse_expression):
        only_parse_errors(function, text)


@st.composite
def mutated_statement(draw: st.DrawFn) -> str:
    """A valid statement with a few random token edits: delete, insert, duplicate, swap."""
    tokens = TOKEN.findall(draw(st.sampled_from(STATEMENTS)))
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        operation = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "chars"]))
        if operation == "delete":
            del tokens[i]
        elif operation == "insert":
            tokens.insert(i, draw(st.sampled_from(EXTRA_TOKENS) | st.text(max_size=3)))
        elif operation == "duplicate":
            tokens.insert(i, tokens[i])
        elif operation == "swap":
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens[i] = mutate_chars(draw, tokens[i])
    return "".join(tokens)


def mutate_chars(draw: st.DrawFn, token: str) -> str:
    """Delete, replace or insert one character inside a token."""
    position = draw(st.integers(0, len(token)))
    character = draw(st.characters())
    kind = draw(st.sampled_from(["delete", "replace", "insert"]))
    if kind == "delete":
        return token[:position] + token[position + 1:]
    if kind == "replace":
        return token[:position] + character + token[position + 1:]
    return token[:position] + character + token[position:]


@FUZZ
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    check_all(text)


@FUZZ
@given(st.text(alphabet="abcsSELCT0129 .,;:()*+-/%='\"`|<>!\n\t#e_"))
def test_arbitrary_sql_characters(text: str) -> None:
    check_all(text)


@FUZZ
@given(st.lists(st.sampled_from(EXTRA_TOKENS), max_size=30).map(" ".join))
def test_random_token_sequences(text: str) -> None:
    check_all(text)


@FUZZ
@given(mutated_statement())
def test_mutated_statements(text: str) -> None:
    check_all(text)


@FUZZ
@given(st.sampled_from(STATEMENTS), st.integers(0, 10_000))
def test_truncated_statements(text: str, cut: int) -> None:
    check_all(text[: cut % (len(text) + 1)])


# ---------------------------------------------------------------- precedence round trip
# Random expression trees printed with only the parentheses precedence needs must
# parse back to the same tree: the grammar's precedence is the one documented.

LEVEL = {"OR": 1, "AND": 2, "NOT": 3, "PREDICATE": 4, "SUM": 5, "PRODUCT": 6, "UNARY": 7,
         "CAST": 8, "PRIMARY": 9}
SUM_OPS = ["+", "-", "||"]
PRODUCT_OPS = ["*", "/", "%"]
COMPARISONS = ["=", "<>", "<", "<=", ">", ">="]


def level(node: ast.Expr) -> int:
    if isinstance(node, ast.BinaryOp):
        if node.op in ("OR", "AND"):
            return LEVEL[node.op]
        if node.op in COMPARISONS:
            return LEVEL["PREDICATE"]
        return LEVEL["SUM"] if node.op in SUM_OPS else LEVEL["PRODUCT"]
    if isinstance(node, ast.UnaryOp):
        return LEVEL["NOT"] if node.op == "NOT" else LEVEL["UNARY"]
    if isinstance(node, (ast.IsNull, ast.InList, ast.Between, ast.Like)):
        return LEVEL["PREDICATE"]
    if isinstance(node, ast.Cast):
        return LEVEL["CAST"]
    return LEVEL["PRIMARY"]


def render(node: ast.Expr, minimum: int = 0) -> str:
    """SQL text for `node`, parenthesized only where the grammar needs it."""
    text = _render(node)
    return f"({text})" if level(node) < minimum else text


def _render(node: ast.Expr) -> str:
    if isinstance(node, ast.BinaryOp):
        own = level(node)
        return f"{render(node.left, own)} {node.op} {render(node.right, own + 1)}"
    if isinstance(node, ast.UnaryOp):
        return f"{node.op} {render(node.operand, level(node))}"
    not_ = "NOT " if getattr(node, "negated", False) else ""
    predicate = LEVEL["PREDICATE"]
    if isinstance(node, ast.IsNull):
        return f"{render(node.expr, predicate)} IS {not_}NULL"
    if isinstance(node, ast.InList):
        items = ", ".join(render(i) for i in node.items)
        return f"{render(node.expr, predicate)} {not_}IN ({items})"
    if isinstance(node, ast.Between):
        return (f"{render(node.expr, predicate)} {not_}BETWEEN "
                f"{render(node.low, predicate + 1)} AND {render(node.high, predicate + 1)}")
    if isinstance(node, ast.Like):
        return f"{render(node.expr, predicate)} {not_}LIKE {render(node.pattern, predicate + 1)}"
    if isinstance(node, ast.Cast):
        return f"{render(node.expr, LEVEL['CAST'])}::{node.type_name}"
    if isinstance(node, ast.Identifier):
        return ".".join(node.parts)
    if isinstance(node, ast.NumberLit):
        return str(node.value)
    if isinstance(node, ast.StringLit):
        return "'" + node.value.replace("'", "''") + "'"
    if isinstance(node, ast.BoolLit):
        return "TRUE" if node.value else "FALSE"
    if isinstance(node, ast.NullLit):
        return "NULL"
    if isinstance(node, ast.FuncCall):
        return f"{node.name}({', '.join(render(a) for a in node.args)})"
    raise AssertionError(node)


LEAVES = st.one_of(
    st.sampled_from(["a", "b", "c", "price", "window_start"]).map(lambda n: ast.Identifier((n,))),
    st.integers(0, 1000).map(ast.NumberLit),
    st.text(alphabet="ab' %", max_size=4).map(ast.StringLit),
    st.booleans().map(ast.BoolLit),
    st.just(ast.NullLit()),
)


def extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    ops = st.sampled_from(["OR", "AND", *COMPARISONS, *SUM_OPS, *PRODUCT_OPS])
    return st.one_of(
        st.builds(ast.BinaryOp, ops, children, children),
        st.builds(ast.UnaryOp, st.sampled_from(["NOT", "-", "+"]), children),
        st.builds(ast.IsNull, children, negated=st.booleans()),
        st.builds(ast.InList, children, st.lists(children, min_size=1, max_size=3).map(tuple),
                  negated=st.booleans()),
        st.builds(ast.Between, children, children, children, negated=st.booleans()),
        st.builds(ast.Like, children, children, negated=st.booleans()),
        st.builds(ast.Cast, children, st.sampled_from(["INT", "DOUBLE", "STRING"])),
        st.builds(ast.FuncCall, st.sampled_from(["F", "UPPER"]),
                  st.lists(children, max_size=2).map(tuple)),
    )


@FUZZ
@given(st.recursive(LEAVES, extend, max_leaves=12))
def test_precedence_round_trip(tree: ast.Expr) -> None:
    text = render(tree)
    assert parse_expression(text) == tree, text
