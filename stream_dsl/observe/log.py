"""Lifecycle log records: stdlib `logging`, so they go wherever the application sends its logs.

stream-dsl configures no handler (a library must not); `stream-dsl run`
and applications that want them call `configure`. Loggers, by topic:

- `stream_dsl.query`: a query started, stopped, failed; bursts of dead letters; a
  collect()'s dead letters, once it returns;
- `stream_dsl.recovery`: a worker lost, the workers restored, the first batch after;
- `stream_dsl.checkpoint`: a checkpoint committed;
- the connectors' own loggers (`stream_dsl.connectors.*`): sink and source retries during outages.

Each record carries the facts as fields under `record.sd` (query, batch,
worker, checkpoint, ...), which `JsonFormatter` writes out as JSON, one
object per line, for log shippers.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, TextIO

from stream_dsl.secrets import masked_logger

QUERY = masked_logger("stream_dsl.query")
RECOVERY = masked_logger("stream_dsl.recovery")
CHECKPOINT = masked_logger("stream_dsl.checkpoint")
DEAD_LETTER_LOG_EVERY_S = 10.0  # at most one dead-letter record per query this often (with the count since)


# The query whose thread logs (set by its QueryHandle): the driver and the recovery code log without knowing it.
current_query: contextvars.ContextVar[str | None] = contextvars.ContextVar("stream_dsl_query", default=None)


def event(logger: logging.Logger, level: int, message: str, **facts: Any) -> None:
    """Log `message` (already worded for people) with `facts` kept as fields for machines; the query
    running in this thread is named in both."""
    if logger.isEnabledFor(level):
        query = facts.setdefault("query", current_query.get())
        text = message if query is None or message.startswith("query ") else f"query {query}: {message}"
        logger.log(level, text, extra={"sd": facts})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message and the record's facts."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "sd", {}) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str | int = "INFO", *, json_format: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """Send stream-dsl's records at `level` and above to `stream` (stderr), as text or JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter() if json_format else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger("stream_dsl")
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    return handler


class DeadLetterBursts:
    """Dead letters of one query, logged at most every DEAD_LETTER_LOG_EVERY_S with the count since the last."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.unlogged = 0
        self.logged_at = float("-inf")

    def saw(self, batch: int, count: int, reason: str | None) -> None:
        self.unlogged += count
        now = time.monotonic()
        if self.unlogged and now - self.logged_at >= DEAD_LETTER_LOG_EVERY_S:
            event(
                QUERY,
                logging.WARNING,
                f"query {self.query}: {self.unlogged} records went to dead letters (up to batch {batch})"
                + (f"; the latest because: {reason}" if reason else ""),
                query=self.query,
                batch=batch,
                dead_letters=self.unlogged,
                reason=reason,
            )
            self.unlogged, self.logged_at = 0, now


def collected_dead_letters(count: int, latest: Any, where: str) -> None:
    """A collect()'s dead letters, in one record once it returns: how many, `where` they went, and the latest
    one (a `DeadLetter`: its source, position and reason; not its raw text, which may be anything)."""
    plural = "s" if count != 1 else ""
    text = f"{count} record{plural} went to dead letters ({where})"
    facts: dict[str, Any] = {"dead_letters": count}
    if latest is not None:
        text += f"; the latest: {latest.source} at {latest.position}: {latest.reason}"
        facts.update(source=latest.source, position=latest.position, reason=latest.reason)
    event(QUERY, logging.WARNING, text, **facts)
