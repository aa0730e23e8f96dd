"""Keep what must not be shown out of what stream-dsl prints.

Secrets: a password in a URL (`redis://user:secret@host`, `?password=...`)
and options whose name says they hold one (`password`, `token`,
`secret`, ...) are masked as `***` in errors, warnings and logs, in
`\\sinks` and `\\describe`, and wherever options are printed. The catalog
keeps the real values: connectors need them.

Terminal escape sequences: control characters in data (ESC starts the
sequences that move the cursor, rewrite the screen or set a window title)
are shown escaped (`\\x1b`) in the REPL and by the console sink, so data
can neither garble nor spoof the terminal. Newlines and tabs stay.

>>> mask("Redis at redis://alice:s3cret@db:6379/0 is unreachable")
'Redis at redis://alice:***@db:6379/0 is unreachable'
>>> mask_option("token", "abc")
'***'
>>> escape_control("\\x1b]0;pwned\\x07ok")
'\\\\x1b]0;pwned\\\\x07ok'
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # errors.py masks with this module: importing it must not load polars
    import polars as pl

MASK = "***"
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]*:)(?P<password>[^@/\s'\"]+)@")
_SECRET_NAMES = r"password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key|credentials?"
_QUERY_SECRET = re.compile(rf"(?i)(?P<head>\b(?:{_SECRET_NAMES})=)(?P<value>[^&\s'\"]+)")
_SECRET_OPTION = re.compile(rf"(?i)(^|[_.-])({_SECRET_NAMES})($|[_.-])")
# C0 controls but tab and newline, DEL, and C1 controls (U+009B is a one-character CSI)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def mask(text: str) -> str:
    """`text` with the passwords in URLs and in `password=...` parameters replaced by ***."""
    if "://" not in text and "=" not in text:
        return text
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)
    return _QUERY_SECRET.sub(lambda m: m.group("head") + MASK, text)


def is_secret_option(key: str) -> bool:
    return bool(_SECRET_OPTION.search(key))


def mask_option(key: str, value: str) -> str:
    """An option's value as it may be shown: *** for a secret option, masked URLs otherwise."""
    return MASK if is_secret_option(key) else mask(value)


def mask_options(options: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((key, mask_option(key, value)) for key, value in options)


def escape_control(text: str) -> str:
    """Control characters (but newline and tab) as visible escapes: ESC becomes the four characters \\x1b."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def escape_json_text(text: str) -> str:
    """JSON text with any control character left raw (polars leaves C1 ones) written as a \\u escape: still JSON."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def escape_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with the control characters of its text columns escaped (see `escape_control`), for display."""
    import polars as pl

    text = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    if not text or not frame.height:
        return frame
    pattern = _CONTROL.pattern
    has = frame.select(pl.any_horizontal([pl.col(c).str.contains(pattern).any() for c in text])).item()
    if not has:
        return frame
    return frame.with_columns(pl.col(c).map_elements(escape_control, return_dtype=pl.String) for c in text)


class MaskSecrets(logging.Filter):
    """A logging filter that masks passwords in the message (see `install`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def masked_logger(name: str) -> logging.Logger:
    """`logging.getLogger(name)` with the `MaskSecrets` filter: how stream-dsl modules get their logger."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, MaskSecrets) for f in logger.filters):
        logger.addFilter(MaskSecrets())
    return logger
