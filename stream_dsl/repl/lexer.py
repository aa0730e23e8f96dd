"""A pygments lexer for the DSL, and the word lists the REPL shares with its completer.

Keywords are read from `grammar.lark` (its keyword terminals), functions from
the function registry and type names from `types.TYPE_NAMES`, so highlighting
and completion follow the language as it grows. The lexer is total: any text
(half-typed strings, stray characters, meta commands) lexes without error.

>>> from pygments.token import Keyword, Name, String
>>> toks = [(t, v) for t, v in StreamDSLLexer().get_tokens("SELECT upper(x) FROM s WHERE y = 'a';") if v.strip()]
>>> toks[0], toks[1], toks[-2]
((Token.Keyword, 'SELECT'), (Token.Name.Function, 'upper'), (Token.Literal.String.Single, "'a'"))
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from pygments.lexer import RegexLexer, words
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Whitespace

from stream_dsl.ir.functions import known_function_names
from stream_dsl.ir.types import TYPE_NAMES

__all__ = ["StreamDSLLexer", "keywords", "function_names", "type_names", "META_COMMANDS"]

_GRAMMAR = Path(__file__).parent.parent / "sql" / "grammar.lark"

# Meta commands of the REPL: name → (argument hint, what it does). `\help` prints this.
META_COMMANDS: dict[str, tuple[str, str]] = {
    "\\help": ("", "show this help"),
    "\\streams": ("", "list streams (and streaming views) with their columns"),
    "\\tables": ("", "list tables (and views over tables) with their columns"),
    "\\sinks": ("", "list sinks"),
    "\\describe": ("NAME", "columns and types of a stream, table or view"),
    "\\explain": ("QUERY", "logical, optimized and stage plans of a query"),
    "\\set": ("[KEY VALUE]", "show or change a setting: workers, executor, group_size, batch_interval, optimize"),
    "\\timing": ("[on|off]", "toggle showing how long each statement took"),
    "\\pager": ("[on|off]", "toggle showing results taller than the terminal through $PAGER (less)"),
    "\\format": ("[table|csv|json]", "how results are printed"),
    "\\i": ("FILE", "run the statements of a script file"),
    "\\why": ("[QUERY]", "why a query prints nothing: rows per operator, windows, late rows (default: the newest)"),
    "\\q": ("", "quit (or Ctrl-D)"),
}


@lru_cache(maxsize=1)
def keywords() -> tuple[str, ...]:
    """Every keyword of the grammar (upper case): its keyword terminals, reserved words and units."""
    text = _GRAMMAR.read_text(encoding="utf-8")
    found = set(re.findall(r"^[A-Z_]+\.2:\s*/(\w+)\\b/i", text, re.M))
    reserved = re.search(r"\(\?:((?:\w+\|)+\w+)\)\\b\)", text)
    if reserved:
        found |= set(reserved.group(1).split("|"))
    found |= {"millisecond", "second", "minute", "hour", "day"}
    return tuple(sorted(w.upper() for w in found))


@lru_cache(maxsize=1)
def function_names() -> tuple[str, ...]:
    return tuple(known_function_names())


@lru_cache(maxsize=1)
def type_names() -> tuple[str, ...]:
    return tuple(sorted({name for name in TYPE_NAMES if " " not in name}))


class StreamDSLLexer(RegexLexer):
    """Keywords, functions, types, strings, numbers, comments, operators and REPL meta commands."""

    name = "stream-dsl"
    aliases = ["stream-dsl", "streamdsl"]
    filenames = ["*.sql"]
    flags = re.IGNORECASE | re.MULTILINE

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"^\\[a-z?]+", Keyword.Pseudo),
            (r"--[^\n]*", Comment.Single),
            (r"/\*", Comment.Multiline, "block_comment"),
            (r"'(?:[^']|'')*'?", String.Single),
            (r'"(?:[^"]|"")*"?', Name.Variable),
            (r"`(?:[^`]|``)*`?", Name.Variable),
            (r"(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:e[+-]?[0-9]+)?\b", Number),
            (words(function_names(), suffix=r"(?=\s*\()"), Name.Function),
            (words(type_names(), suffix=r"\b"), Keyword.Type),
            (words(keywords(), suffix=r"\b"), Keyword),
            (r"(<>|!=|<=|>=|\|\||::|[-+*/%=<>])", Operator),
            (r"[(),;.]", Punctuation),
            (r"[^\W\d]\w*", Name),
            (r".", Error),
        ],
        "block_comment": [
            (r"[^*]+", Comment.Multiline),
            (r"\*/", Comment.Multiline, "#pop"),
            (r"\*", Comment.Multiline),
        ],
    }
