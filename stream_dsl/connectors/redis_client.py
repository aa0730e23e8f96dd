"""What the redis source and sink share: the client, retrying lost connections, entry ids and options."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from stream_dsl.errors import ConnectorError
from stream_dsl.secrets import mask, masked_logger
from stream_dsl.ir.definitions import SinkDef, SourceDef

try:
    import redis
    from redis import exceptions as redis_errors
except ImportError:  # pragma: no cover - the registry turns this into a clear ConnectorError
    raise ImportError("the redis connector needs the 'redis' package (pip install 'stream-dsl[redis]')") from None

log = masked_logger("stream_dsl.connectors.redis")

DEFAULT_URL = "redis://127.0.0.1:6379/0"
FORMATS = ("json", "fields")
BACKOFF_START_S, BACKOFF_MAX_S = 0.1, 5.0

T = TypeVar("T")
StreamId = tuple[int, int]


def parse_id(value: str | bytes) -> StreamId:
    """'1700000000000-3' → (1700000000000, 3); '0' → (0, 0)."""
    text = value.decode() if isinstance(value, bytes) else value
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(value: StreamId) -> str:
    """(1700000000000, 3) → '1700000000000-3'."""
    return f"{value[0]}-{value[1]}"


def entry_text(value: bytes | str | None) -> str:
    """An entry id, field or value as text (invalid UTF-8 escaped)."""
    if value is None:
        return ""
    return value if isinstance(value, str) else value.decode("utf-8", errors="backslashreplace")


def retry_seconds_option(value: str | None, what: str) -> float:
    """The retry_seconds option: how long to retry a lost connection (30 s by default)."""
    try:
        seconds = float(value) if value is not None else 30.0
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ConnectorError(f"{what}: option retry_seconds must be a number of seconds >= 0, got '{value}'")
    return seconds


def stream_format(value: str | None, what: str) -> str:
    """The format option: json (default) or fields."""
    fmt = (value or "json").strip().lower()
    if fmt not in FORMATS:
        raise ConnectorError(f"{what}: option format must be one of {', '.join(FORMATS)}, got '{value}'")
    return fmt


def required_option(definition: SourceDef | SinkDef, key: str, what: str) -> str:
    """An option the connector cannot do without, or a ConnectorError naming it."""
    value = definition.option(key)
    if not value:
        raise ConnectorError(f"{what}: the redis connector needs a {key} option")
    return value


def connect(url: str, what: str) -> "redis.Redis":
    """A client for `url` (connecting lazily), or a ConnectorError naming a bad url."""
    try:
        return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=5)
    except ValueError as e:
        raise ConnectorError(f"{what}: bad Redis url '{mask(url)}': {mask(str(e))}") from None


@dataclass
class Retrier:
    """Runs Redis calls, retrying lost connections with exponential backoff for `seconds` (see the module doc)."""

    what: str
    url: str
    seconds: float
    on_group_missing: Callable[[], object] | None = None  # its result is not used
    retries: int = 0
    status: str = "ok"

    def __call__(self, action: str, call: Callable[[], T]) -> T:
        deadline: float | None = None
        delay = BACKOFF_START_S
        attempts = 0
        regrouped = False
        while True:
            try:
                result = call()
                self.status = "ok"
                return result
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as e:
                attempts += 1
                now = time.monotonic()
                deadline = now + self.seconds if deadline is None else deadline
                if now >= deadline:
                    self.status = "failed"
                    raise ConnectorError(
                        f"{self.what}: Redis at {self.url} is unreachable ({action}): gave up after retrying "
                        f"for {self.seconds:g}s ({attempts} attempts); last error: {e}"
                    ) from None
                self.retries += 1
                self.status = f"retrying: {e}"
                log.warning(
                    "%s: Redis at %s is unreachable (%s: %s); retrying in %.1fs, giving up after %gs",
                    self.what,
                    self.url,
                    action,
                    e,
                    delay,
                    self.seconds,
                )
                time.sleep(min(delay, max(deadline - now, 0.0)))
                delay = min(delay * 2, BACKOFF_MAX_S)
            except redis_errors.ResponseError as e:
                if "NOGROUP" in str(e) and self.on_group_missing is not None and not regrouped:
                    regrouped = True
                    log.warning("%s: consumer group missing (%s); creating it again", self.what, e)
                    self.on_group_missing()
                    continue
                raise ConnectorError(f"{self.what}: Redis refused {action}: {e}") from None
            except redis_errors.RedisError as e:
                raise ConnectorError(f"{self.what}: Redis error during {action}: {e}") from None
