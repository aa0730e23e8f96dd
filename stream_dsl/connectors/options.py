"""Reading WITH options: typed values, and a clear error for a typo or a bad value.

Options arrive as strings (`WITH (rate = '1000', watch = 'true')`); each
connector checks the keys it knows so a misspelled option is an error that
suggests the right name, not a setting silently ignored.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable, overload

from stream_dsl.errors import ConnectorError, did_you_mean

# Options any source or sink may carry; executors, the catalog and the optimizer's
# statistics (`ndv = 'col=N, ...'`, `rows_per_batch = 'N'`, see optimizer/cost.py) read them.
# `timestamp_unit` (connectors/timestamps.py) tells how sources that decode text read epoch numbers.
# `splits` is checked where a source opens: only connectors that declare SPLITS take it (`connectors.open_source`).
COMMON_OPTIONS = frozenset(
    {"connector", "dead_letter", "late_rows", "realtime", "ndv", "rows_per_batch", "timestamp_unit", "splits"}
)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def check_keys(options: Iterable[tuple[str, str]], known: Iterable[str], *, what: str) -> None:
    """Refuse options the connector does not know, naming the closest known ones."""
    allowed = set(known) | COMMON_OPTIONS
    for key, _ in options:
        if key not in allowed:
            raise ConnectorError(
                f"{what}: unknown option '{key}'{did_you_mean(key, sorted(allowed))}; "
                f"known options: {', '.join(sorted(allowed))}"
            )


def as_bool(value: str | None, *, key: str, what: str, default: bool = False) -> bool:
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConnectorError(f"{what}: option {key} must be 'true' or 'false', got '{value}'")


@overload
def as_int(value: str, *, key: str, what: str, minimum: int | None = None) -> int: ...
@overload
def as_int(value: str | None, *, key: str, what: str, minimum: int | None = None) -> int | None: ...


def as_int(value: str | None, *, key: str, what: str, minimum: int | None = None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value.strip().replace("_", ""))
    except ValueError:
        raise ConnectorError(f"{what}: option {key} must be an integer, got '{value}'") from None
    if minimum is not None and number < minimum:
        raise ConnectorError(f"{what}: option {key} must be at least {minimum}, got {number}")
    return number


@overload
def as_positive_rate(value: str, *, key: str, what: str) -> Fraction: ...
@overload
def as_positive_rate(value: str | None, *, key: str, what: str) -> Fraction | None: ...


def as_positive_rate(value: str | None, *, key: str, what: str) -> Fraction | None:
    """A positive number (integer or decimal), exact, so event times never drift by rounding."""
    if value is None:
        return None
    try:
        number = Fraction(value.strip().replace("_", ""))
    except (ValueError, ZeroDivisionError):
        raise ConnectorError(f"{what}: option {key} must be a positive number, got '{value}'") from None
    if number <= 0:
        raise ConnectorError(f"{what}: option {key} must be a positive number, got '{value}'")
    return number.limit_denominator(1_000_000)


_DURATION_UNITS = {"ms": 1, "s": 1000, "sec": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def _number_and_unit(value: str) -> tuple[float, str] | None:
    text = value.strip().lower().replace(" ", "").replace("_", "")
    digits = len(text) - len(text.lstrip("0123456789."))
    try:
        return float(text[:digits]), text[digits:]
    except ValueError:
        return None


def as_duration_ms(value: str | None, *, key: str, what: str) -> int | None:
    """A positive duration such as '30s', '1 min', '500ms' or '2h', in milliseconds."""
    if value is None:
        return None
    parsed = _number_and_unit(value)
    if parsed is None or parsed[1] not in _DURATION_UNITS or parsed[0] <= 0:
        raise ConnectorError(f"{what}: option {key} must be a duration such as '30s', '1min' or '2h', got '{value}'")
    return int(parsed[0] * _DURATION_UNITS[parsed[1]])


def as_size_bytes(value: str | None, *, key: str, what: str) -> int | None:
    """A positive size such as '128MB', '1GiB' or '4096' (bytes)."""
    if value is None:
        return None
    parsed = _number_and_unit(value)
    if parsed is None or (parsed[1] or "b") not in _SIZE_UNITS or parsed[0] <= 0:
        raise ConnectorError(f"{what}: option {key} must be a size such as '128MB' or '1GiB', got '{value}'")
    return int(parsed[0] * _SIZE_UNITS[parsed[1] or "b"])
