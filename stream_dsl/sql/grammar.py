"""The lark parser for `grammar.lark`, built once and shared by the parser and its error messages."""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark

_GRAMMAR_FILE = Path(__file__).with_name("grammar.lark")


@functools.cache
def lark_parser() -> Lark:
    """The lark parser, built once: building the LALR tables takes a while."""
    return Lark(
        _GRAMMAR_FILE.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        start=["script", "expr_only"],
    )
