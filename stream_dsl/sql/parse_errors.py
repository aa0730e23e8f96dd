"""lark failures → friendly `ParseError`s that say what was found and what would have been accepted."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable, TypedDict, cast

from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternRE, PatternStr

from stream_dsl.sql.grammar import lark_parser
from stream_dsl.errors import ParseError

_MAX_EXPECTED = 8


# Names for terminals that are not spelled out in the grammar text.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "QUOTED_NAME": "a name",
    "BACKQUOTED_NAME": "a name",
    "KEY": "a name",
    "STRING": "a string",
    "NUMBER": "a number",
    "UNIT": "a time unit (SECOND, MINUTE, ...)",
    "NE": "'<>'",
    "GROUP": "GROUP BY",
    "ORDER": "ORDER BY",
    "$END": "end of input",
    "<operator>": "an operator",
}

# Terminals that start an expression: when most of them are expected,
# saying "an expression" is clearer than listing them.
_EXPRESSION_START = frozenset(
    {
        "NAME",
        "QUOTED_NAME",
        "BACKQUOTED_NAME",
        "NUMBER",
        "STRING",
        "LPAR",
        "MINUS",
        "PLUS",
        "TRUE",
        "FALSE",
        "NULL",
        "CASE",
        "CAST",
        "INTERVAL",
        "TIMESTAMP",
        "DATE",
        "NOT",
        "ARRAY",
        "LSQB",
        "LBRACE",
    }
)

# Clause keywords in the order a reader expects them (query order).
_KEYWORD_ORDER = [
    "SELECT",
    "DISTINCT",
    "FROM",
    "JOIN",
    "INNER",
    "LEFT",
    "ON",
    "USING",
    "WHERE",
    "GROUP",
    "HAVING",
    "EMIT",
    "UNION",
    "ORDER",
    "LIMIT",
]

# Terminals that continue a complete expression; listed as "an operator".
_ARITHMETIC = frozenset({"PLUS", "MINUS", "STAR", "SLASH", "PERCENT", "CONCAT", "DCOLON", "LSQB"})
_OPERATORS = _ARITHMETIC | {"OR", "AND", "NOT", "IS", "IN", "BETWEEN", "LIKE", "EQ", "NE", "LT", "LE", "GT", "GE"}

_VALUE_KINDS = frozenset({"NAME", "QUOTED_NAME", "BACKQUOTED_NAME", "KEY", "STRING", "NUMBER", "UNIT"})

# Words a misspelling is most likely to be aimed at.
_CLAUSE_KEYWORDS = [
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "HAVING",
    "JOIN",
    "LIMIT",
    "UNION",
    "EMIT",
    "CREATE",
    "INSERT",
    "STREAM",
    "TABLE",
    "WITH",
]


@dataclass(frozen=True)
class _Context:
    """What the parser had seen just before the bad input: why it failed, in words."""

    expected: frozenset[str]
    previous: Token | None


def _context(text: str, pos: int | None, start: str, fallback: Iterable[str]) -> _Context:
    """Re-run the parser up to `pos` and ask which terminals it would really accept there.

    The LALR table alone over-reports (merged states list terminals that only
    fit in another context), and at the moment lark fails it may already have
    reduced past the interesting state; feeding the tokens before `pos` again
    and trying each terminal on a copy gives the exact set. Only runs on errors.
    """
    try:
        interactive = lark_parser().parse_interactive(text[:pos], start=start)
        interactive.exhaust_lexer()
        expected = frozenset(interactive.accepts())
        stack = interactive.parser_state.value_stack
        previous = _last_token(stack[-1]) if stack else None
    except Exception:  # the cut changed the lexing: fall back to lark's own list
        return _Context(frozenset(fallback), None)
    return _Context(expected or frozenset(fallback), previous)


def _last_token(value: Any) -> Token | None:
    """The rightmost token of a (partly reduced) parse tree value."""
    while isinstance(value, Tree):
        children = [c for c in value.children if c is not None]
        if not children:
            return None
        value = children[-1]
    return value if isinstance(value, Token) else None


def error_from_lark(exc: UnexpectedInput, text: str, start: str) -> ParseError:
    """Say what was found, where, and what would have been accepted."""
    if isinstance(exc, UnexpectedToken):
        return _unexpected_token(exc, text, start)
    if isinstance(exc, UnexpectedCharacters):
        return _unexpected_characters(exc, text, start)
    line, column = getattr(exc, "line", 1), getattr(exc, "column", 1)
    return ParseError(
        str(exc).splitlines()[0],
        line=line if isinstance(line, int) else 1,
        column=column if isinstance(column, int) else 1,
        source=text,
    )


def _unexpected_token(exc: UnexpectedToken, text: str, start: str) -> ParseError:
    token: Token = exc.token
    if token.type == "$END":
        context = _context(text, len(text), start, exc.expected)
        line, column = token.end_line or 1, token.end_column or 1
        return ParseError(
            f"unexpected end of input{_expectation(context, token)}", line=line, column=column, source=text
        )
    comment = _unterminated_comment(text, token.start_pos)
    if comment is not None:
        return ParseError("unterminated /* comment", source=text, **_line_col(text, comment))
    context = _context(text, token.start_pos, start, exc.expected)
    return ParseError(
        f"unexpected {_found(token)}{_expectation(context, token)}", line=token.line, column=token.column, source=text
    )


def _found(token: Token) -> str:
    """The unexpected token as shown in a message: `'FORM'`, `string 'x'`, `name "A b"`."""
    text = _shorten(str(token))
    if token.type == "STRING":
        return f"string {text}"
    if token.type in ("QUOTED_NAME", "BACKQUOTED_NAME"):
        return f"name {text}"
    return f"'{text}'"


def _unexpected_characters(exc: UnexpectedCharacters, text: str, start: str) -> ParseError:
    pos = cast(int, exc.pos_in_stream)  # the lexer's position; lark's class default (None) types it None
    char = text[pos] if 0 <= pos < len(text) else ""
    where: _LineCol = {"line": exc.line, "column": exc.column}
    if char == "'":
        return ParseError("unterminated string literal (missing closing ')", source=text, **where)
    if char in ('"', "`"):
        return ParseError(f"unterminated quoted name (missing closing {char})", source=text, **where)
    comment = _unterminated_comment(text, pos)
    if comment is not None:
        return ParseError("unterminated /* comment", source=text, **_line_col(text, comment))
    expected = _describe_expected(_context(text, pos, start, exc.allowed or ()).expected)
    tail = f" (expected {_join_expected(expected)})" if expected else ""
    return ParseError(f"unexpected character {char!r}{tail}", source=text, **where)


def _unterminated_comment(text: str, pos: int | None) -> int | None:
    """Where a '/*' without '*/' starts, if the error is at or just after it."""
    if pos is None:
        return None
    for start in (pos, pos - 1):
        if start >= 0 and text.startswith("/*", start) and "*/" not in text[start + 2 :]:
            return start
    return None


class _LineCol(TypedDict):
    line: int
    column: int


def _line_col(text: str, pos: int) -> _LineCol:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return {"line": line, "column": column}


def _shorten(text: str, limit: int = 30) -> str:
    """The found token as shown in a message: one line, not too long."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expectation(context: _Context, token: Token) -> str:
    """The part of the message after 'unexpected X': a hint, or what was expected."""
    hint = _hint(context.previous, token)
    if hint:
        return f": {hint}"
    words = _describe_expected(context.expected)
    text = f" (expected {_join_expected(words)})" if words else ""
    return text + _misspelling(context.previous, token, context.expected)


def _hint(previous: Token | None, token: Token) -> str | None:
    """Named messages for the most common mistakes."""
    if previous is None:
        return None
    closing = token.type in ("FROM", "WHERE", "GROUP", "HAVING", "RPAR", "SEMICOLON", "$END")
    if previous.type == "SELECT" and closing:
        return "the select list is empty"
    if previous.type == "COMMA" and closing:
        return "a trailing comma before it (another item was expected after ',')"
    if previous.type in ("FROM", "JOIN") and closing:
        return f"expected a stream or table name after {previous.type}"
    return None


def _misspelling(previous: Token | None, token: Token, expected: Iterable[str]) -> str:
    """'; did you mean FROM?' when the found (or previous) word looks like a keyword."""
    keywords = [name for name in expected if _is_keyword(name)]
    word = str(token)
    match = difflib.get_close_matches(word.upper(), keywords, n=1, cutoff=0.6)
    if match and word.isidentifier() and len(word) >= 3:
        return f"; did you mean {_TERMINAL_WORDS.get(match[0], match[0])}?"
    if previous is not None and previous.type == "NAME":
        match = difflib.get_close_matches(previous.upper(), _CLAUSE_KEYWORDS, n=1, cutoff=0.75)
        if match:
            return f"; is '{previous}' a misspelled {match[0]}?"
    return ""


def _describe_expected(names: Iterable[str]) -> list[str]:
    """Terminal names → short human words, the most useful first, without duplicates."""
    names = set(names) - {"WS", "LINE_COMMENT", "BLOCK_COMMENT", "<END-OF-FILE>"}
    words: list[str] = []
    if {"NAME", "NUMBER"} <= names:
        names -= _EXPRESSION_START
        words.append("an expression")
    operators = names & (_OPERATORS if "OR" in names else _ARITHMETIC)
    if len(operators) >= 3:  # after a complete expression: say so instead of listing them
        names = (names - operators) | {"<operator>"}
    words += [_word(name) for name in sorted(names, key=_rank)]
    return list(dict.fromkeys(words))


def _rank(name: str) -> tuple[int, str]:
    """Kinds of value, clause keywords in query order, ')' and ',', other keywords,
    operators, ';', end of input."""
    if name in _VALUE_KINDS:
        return 0, name
    if name in _KEYWORD_ORDER:
        return 1, f"{_KEYWORD_ORDER.index(name):03}"
    if name in ("RPAR", "COMMA"):
        return 2, name
    if _is_keyword(name):
        return 3, name
    return {"<operator>": 5, "SEMICOLON": 6, "$END": 7}.get(name, 4), _word(name)


def _word(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    pattern = _terminal_pattern(name)
    return f"'{pattern.value}'" if isinstance(pattern, PatternStr) else name


def _is_keyword(name: str) -> bool:
    pattern = _terminal_pattern(name)
    return isinstance(pattern, PatternRE) and pattern.value.endswith(r"\b")


def _terminal_pattern(name: str) -> Any:
    try:
        return lark_parser().get_terminal(name).pattern
    except KeyError:
        return None


def _join_expected(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    shown = words[:_MAX_EXPECTED]
    more = ", ..." if len(words) > _MAX_EXPECTED else ""
    return "one of: " + ", ".join(shown) + more
