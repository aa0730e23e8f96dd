"""What every `stream-dsl` subcommand shares: exit codes, UsageError, argument types and the execution options."""

from __future__ import annotations

import argparse
from typing import Any

from stream_dsl.errors import DSLError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXECUTORS = ("drizzle", "bsp", "inline")


class UsageError(Exception):
    """A command line that parses but cannot be acted on (exit code 2)."""


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got '{text}'")
    return value


def group_size(text: str) -> int | str:
    return "auto" if text.strip().lower() == "auto" else positive_int(text)


def worker_threads(text: str) -> int | str:
    """A polars thread count per worker, or 'auto' (cores // workers)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got '{text}'") from None


def duration(text: str) -> str:
    """A batch interval such as '100ms', '1s' or a bare number of milliseconds."""
    candidate = f"{text}ms" if text.strip().isdigit() else text
    from stream_dsl.bind import typecheck  # polars: only when parsing a value

    try:
        typecheck.parse_duration_ms(candidate)
    except DSLError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 100ms or 1s, got '{text}'") from None
    return candidate


def add_context_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The execution options. On a subcommand (`top=False`) an option not given leaves the value the
    top-level parser set: `stream-dsl --workers 4 run f.sql` and `stream-dsl run f.sql --workers 4` agree."""
    unset: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("execution")
    group.add_argument("--executor", choices=EXECUTORS, default=unset, help="how queries run (default: drizzle)")
    group.add_argument("--workers", type=positive_int, metavar="N", default=unset, help="worker processes (default: 2)")
    group.add_argument(
        "--group-size",
        type=group_size,
        metavar="G",
        default=unset,
        help="micro-batches scheduled at once, or 'auto' (default: 10)",
    )
    group.add_argument(
        "--batch-interval",
        type=duration,
        metavar="DURATION",
        default=unset,
        help="event time one micro-batch covers, e.g. 100ms or 1s (default: 100ms)",
    )
    group.add_argument(
        "--worker-threads",
        type=worker_threads,
        metavar="N",
        default=unset,
        help="polars threads in each worker process (POLARS_MAX_THREADS there), or 'auto' (default: cores // workers)",
    )
    group.add_argument(
        "--no-optimize",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="run the plans as written, without rewrites",
    )
    group.add_argument(
        "--transport",
        choices=("pipes", "ray"),
        default=unset,
        help="how the driver and the workers talk: pipes (this machine) or ray (default: pipes)",
    )
    group.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        default=unset,
        help="with --transport ray: 'auto' or host:port of a Ray cluster (default: start a local Ray)",
    )
    group.add_argument(
        "--log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
        default=unset,
        help="write stream-dsl's log records (query start and end, checkpoints, recoveries) at this level "
        "and above to stderr (default: none)",
    )
    group.add_argument(
        "--log-json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="with --log-level: one JSON object per record",
    )


def context_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if getattr(args, "executor", None) is not None:
        kwargs["executor"] = args.executor
    if getattr(args, "workers", None) is not None:
        kwargs["workers"] = args.workers
    if getattr(args, "group_size", None) is not None:
        kwargs["group_size"] = args.group_size
    if getattr(args, "batch_interval", None) is not None:
        kwargs["batch_interval"] = args.batch_interval
    if getattr(args, "worker_threads", None) is not None:
        kwargs["worker_threads"] = args.worker_threads
    if getattr(args, "no_optimize", False):
        kwargs["optimize"] = False
    if getattr(args, "transport", None) is not None:
        kwargs["transport"] = args.transport
    if getattr(args, "ray_address", None) is not None:
        kwargs["ray_address"] = args.ray_address
    if getattr(args, "fresh", False):
        kwargs["checkpoint_reset"] = True
    return kwargs


def configure_logging(args: argparse.Namespace) -> None:
    """`--log-level` (and `--log-json`): stream-dsl's log records to stderr."""
    level = getattr(args, "log_level", None)
    if level is not None:
        from stream_dsl.observe.log import configure

        configure(level, json_format=bool(getattr(args, "log_json", False)), stream=getattr(args, "err", None))
