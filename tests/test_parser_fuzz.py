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
from stream_dsl.sql.unparse import unparse
from budget import examples

CORPUS_FILE = Path(__file__).parent / "parse_corpus" / "valid.sql"
STATEMENTS = [block for block in CORPUS_FILE.read_text(encoding="utf-8").split("\n;\n") if "-- expect:" in block]

# Rough SQL tokens: words, numbers, strings, quoted names, comments, operators, spaces.
TOKEN = re.compile(
    r"""--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`|\w+|::|\|\||<>|!=|<=|>=|\s+|.""", re.DOTALL
)

EXTRA_TOKENS = [
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "JOIN",
    "ON",
    "USING",
    "UNION",
    "ALL",
    "WITH",
    "AS",
    "NOT",
    "NULL",
    "IS",
    "IN",
    "BETWEEN",
    "AND",
    "OR",
    "LIKE",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "CAST",
    "INTERVAL",
    "TIMESTAMP",
    "EMIT",
    "WINDOW",
    "CLOSE",
    "CHANGES",
    "LIMIT",
    "CREATE",
    "STREAM",
    "TABLE",
    "SINK",
    "VIEW",
    "WATERMARK",
    "FOR",
    "DROP",
    "SHOW",
    "SET",
    "(",
    ")",
    ",",
    ";",
    ".",
    "*",
    "+",
    "-",
    "/",
    "%",
    "=",
    "<",
    ">",
    "<>",
    "::",
    "||",
    "'",
    '"',
    "`",
    "/*",
    "*/",
    "--",
    "'x'",
    "1",
    "1.5e3",
    "x",
    "\n",
    " ",
    "\t",
    "\x00",
    "é",
    "€",
]

settings.register_profile(
    "parser-fuzz", max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
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
        return token[:position] + token[position + 1 :]
    if kind == "replace":
        return token[:position] + character + token[position + 1 :]
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
# Random expression trees printed by the unparser (only the parentheses precedence
# needs) must parse back to the same tree: the grammar's precedence is the one documented.

SUM_OPS = ["+", "-", "||"]
PRODUCT_OPS = ["*", "/", "%"]
COMPARISONS = ["=", "<>", "<", "<=", ">", ">="]


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
        st.builds(ast.InList, children, st.lists(children, min_size=1, max_size=3).map(tuple), negated=st.booleans()),
        st.builds(ast.Between, children, children, children, negated=st.booleans()),
        st.builds(ast.Like, children, children, negated=st.booleans()),
        st.builds(ast.Cast, children, st.sampled_from(["INT", "DOUBLE", "STRING"]).map(ast.TypeName)),
        st.builds(ast.FuncCall, st.sampled_from(["F", "UPPER"]), st.lists(children, max_size=2).map(tuple)),
    )


@FUZZ
@given(st.recursive(LEAVES, extend, max_leaves=12))
def test_precedence_round_trip(tree: ast.Expr) -> None:
    text = unparse(tree)
    assert parse_expression(text) == tree, text
