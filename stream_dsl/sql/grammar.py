"""The lark parser for `grammar.lark`, built once and shared by the parser and its error messages.

Building the LALR tables takes about a second, the biggest part of a first
query's start. So the package ships them, built (`grammar.tables`: lark's
`Lark.save`, headed by a fingerprint of the grammar, the options and lark's
version); a parser whose fingerprint does not match (an edited grammar, or
another lark) is built in memory as before, and nothing is written at run
time. After editing the grammar, rebuild the file with
`python -m stream_dsl.sql.grammar` (tests/test_parser.py checks it is current).
"""

from __future__ import annotations

import functools
import hashlib
import pickle
from pathlib import Path

import lark
from lark import Lark

_GRAMMAR_FILE = Path(__file__).with_name("grammar.lark")
TABLES_FILE = Path(__file__).with_name("grammar.tables")
_OPTIONS: dict = {
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": True,
    "start": ["script", "expr_only"],
}


def fingerprint() -> bytes:
    """What the shipped tables must have been built from: this grammar, these options, this lark."""
    text = _GRAMMAR_FILE.read_text(encoding="utf-8") + repr(sorted(_OPTIONS.items())) + lark.__version__
    return hashlib.sha256(text.encode()).hexdigest().encode()


def _build() -> Lark:
    return Lark(_GRAMMAR_FILE.read_text(encoding="utf-8"), **_OPTIONS)


def _shipped() -> Lark | None:
    """The parser from the shipped tables, when they were built from this grammar by this lark."""
    try:
        with open(TABLES_FILE, "rb") as f:
            if f.readline().split()[:1] != [fingerprint()]:
                return None
            return Lark.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, KeyError, TypeError, ValueError):
        return None


@functools.cache
def lark_parser() -> Lark:
    """The lark parser, loaded from the shipped tables or built once."""
    return _shipped() or _build()


def build_tables() -> None:
    """Write `grammar.tables` for the grammar and lark of this installation."""
    parser = _build()
    with open(TABLES_FILE, "wb") as f:
        f.write(fingerprint() + b" lark-" + lark.__version__.encode() + b"\n")
        parser.save(f)


if __name__ == "__main__":
    build_tables()
    print(f"wrote {TABLES_FILE}")
