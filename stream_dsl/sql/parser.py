"""DSL text → syntax tree (`stream_dsl.sql.ast`).

The grammar lives in `grammar.lark` (LALR, contextual lexer), built once in
`grammar`. This module drives a parse: `transform` turns lark's parse tree
into `ast` nodes with positions, and `parse_errors` turns every failure into a
`ParseError` that names what was found and what would have been accepted.

Public functions: `parse` (a script), `parse_statement` (exactly one
statement) and `parse_expression` (a lone expression, for `sd.sql_expr`).
Only `ParseError` ever escapes them.
"""

from __future__ import annotations

from typing import Any

from lark import Tree
from lark.exceptions import UnexpectedInput

from stream_dsl.sql import ast
from stream_dsl.sql.grammar import lark_parser
from stream_dsl.sql.parse_errors import error_from_lark
from stream_dsl.sql.transform import AstBuilder
from stream_dsl.errors import ParseError

__all__ = ["parse", "parse_statement", "parse_expression", "MAX_DEPTH"]

MAX_DEPTH = 200
"""Deepest parse tree accepted. Every later stage walks the tree recursively,
so a deeper query is refused here with a clear message rather than failing
with a RecursionError somewhere downstream."""


# ---------------------------------------------------------------- public API


def parse(text: str) -> list[ast.Statement]:
    """Parse a script: statements separated by ';' (empty statements are skipped)."""
    return list(_run(text, "script"))


def parse_statement(text: str) -> ast.Statement:
    """Parse exactly one statement; a trailing ';' is allowed."""
    statements = parse(text)
    if not statements:
        raise ParseError("expected a statement, found none", line=1, column=1, source=text)
    if len(statements) > 1:
        extra = statements[1].span
        line, column = (extra.line, extra.column) if extra else (1, 1)
        raise ParseError(f"expected one statement, found {len(statements)}", line=line, column=column, source=text)
    return statements[0]


def parse_expression(text: str) -> ast.Expr:
    """Parse a lone expression such as `price * 2 > 10`."""
    return _run(text, "expr_only")


def parse_type(text: str) -> ast.TypeName:
    """Parse a type as a user writes it in DDL or CAST (`BIGINT[]`, `DECIMAL(10, 2)`), for the dataframe API."""
    cast = parse_expression(f"CAST(NULL AS {text})")
    if not isinstance(cast, ast.Cast):
        raise ParseError(f"not a type: {text}", line=1, column=1, source=text)
    return cast.type_name


# ---------------------------------------------------------------- driver


def _run(text: str, start: str) -> Any:
    """Parse `text` from rule `start` and build the AST; only ParseError escapes."""
    if not isinstance(text, str):
        raise TypeError(f"expected query text as str, got {type(text).__name__}")
    try:
        tree = lark_parser().parse(text, start=start)
    except UnexpectedInput as exc:
        raise error_from_lark(exc, text, start) from None
    except RecursionError:
        raise ParseError("query nested too deeply", line=1, column=1, source=text) from None
    except Exception as exc:  # lark's own internal errors: still a parse failure for the user
        raise ParseError(
            f"could not parse query ({type(exc).__name__}: {exc})", line=1, column=1, source=text
        ) from None
    _check_depth(tree, text)
    try:
        return AstBuilder(text).build(tree)
    except RecursionError:
        raise ParseError("query nested too deeply", line=1, column=1, source=text) from None


def _check_depth(tree: Tree, text: str) -> None:
    """Refuse trees deeper than MAX_DEPTH, pointing at where nesting gets too deep."""
    stack: list[tuple[Any, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if depth > MAX_DEPTH:
            meta = node.meta
            line = getattr(meta, "line", 1)
            column = getattr(meta, "column", 1)
            raise ParseError(
                f"query nested too deeply (more than {MAX_DEPTH} levels)", line=line, column=column, source=text
            )
        stack.extend((child, depth + 1) for child in reversed(node.children))
