"""Where one REPL input ends: statements end at `;`, meta commands at the end of their line.

`mask` blanks out string contents and comments (keeping every offset), so
the other functions can look for `;` and words without being fooled by a
`;` inside a string or a comment.

>>> is_complete("SELECT 'a;b'")
False
>>> is_complete("SELECT 'a;b'; -- done")
True
>>> [text for _, text in split_inputs(["\\\\timing\\n", "SELECT 1\\n", "  AS x;\\n", "-- only a comment\\n"])]
['\\\\timing\\n', 'SELECT 1\\n  AS x;\\n']
"""

from __future__ import annotations

from typing import Iterable, Iterator

__all__ = ["mask", "is_complete", "is_blank", "is_meta", "is_quit", "split_inputs"]

QUIT_WORDS = ("exit", "quit")
_QUOTES = "'\"`"


def mask(text: str) -> tuple[str, str]:
    """`text` with string/quoted-name contents and comments replaced by spaces, and the state at its end.

    The state is '' (plain text), a quote character (inside a string or a
    quoted name), '--' (in a line comment) or '/*' (in a block comment).
    """
    out: list[str] = []
    state = ""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if state == "":
            if ch in _QUOTES:
                state = ch
                out.append(ch)
            elif text.startswith("--", i):
                state = "--"
                out.append("  ")
                i += 1
            elif text.startswith("/*", i):
                state = "/*"
                out.append("  ")
                i += 1
            else:
                out.append(ch)
        elif state in _QUOTES:
            if ch == state:
                if i + 1 < n and text[i + 1] == state:  # a doubled quote stays inside
                    out.append("  ")
                    i += 1
                else:
                    state = ""
                    out.append(ch)
            else:
                out.append("\n" if ch == "\n" else " ")
        elif state == "--":
            if ch == "\n":
                state = ""
                out.append(ch)
            else:
                out.append(" ")
        else:  # block comment
            if text.startswith("*/", i):
                state = ""
                out.append("  ")
                i += 1
            else:
                out.append("\n" if ch == "\n" else " ")
        i += 1
    return "".join(out), state


def is_blank(text: str) -> bool:
    """Only whitespace and comments."""
    masked, state = mask(text)
    return not masked.strip() and state in ("", "--", "/*")


def is_meta(text: str) -> bool:
    """A meta command such as `\\describe events`."""
    return text.lstrip().startswith("\\")


def is_quit(text: str) -> bool:
    return text.strip().rstrip(";").strip().lower() in QUIT_WORDS


def is_complete(text: str) -> bool:
    """Whether Enter should run the input: it ends with `;` (outside strings and comments), is a
    meta command or `exit`/`quit`, or holds nothing to run."""
    if is_meta(text) or is_quit(text):
        return True
    masked, state = mask(text)
    if state not in ("", "--"):  # inside a string, a quoted name or a block comment
        return False
    stripped = masked.rstrip()
    return not stripped.strip() or stripped.endswith(";")


def split_inputs(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """Cut a stream of lines into complete inputs: (line number of its first line, its text).

    Inputs holding only blanks and comments are skipped; an unfinished
    statement at the end of input is yielded too (as if it ended with `;`).
    """
    buffer: list[str] = []
    start = 1
    for number, line in enumerate(lines, 1):
        if not buffer:
            start = number
        buffer.append(line)
        text = "".join(buffer)
        if is_complete(text):
            buffer = []
            if not is_blank(text):
                yield start, text
    text = "".join(buffer)
    if buffer and not is_blank(text):
        yield start, text
