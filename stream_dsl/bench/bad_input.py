"""What bad records cost: ndjson decoding of clean input against input with 5% bad records of the same size.

    python -m stream_dsl.bench.bad_input [--records 100000] [--bad 0.05] [--repeat 7]

Prints the best CPU time (process time, so other load on the machine
counts less) of each, and the ratio. The bad records are a mix of the kinds
users send: truncated JSON, strings and decimals where BIGINT or DOUBLE is
declared, unparseable timestamps, arrays; `--refused` adds numbers polars
cannot read (1e400), which cost an extra pass over the chunks they are in;
`--structural` keeps only truncated JSON and arrays.
Set POLARS_MAX_THREADS=1 for steadier numbers on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from stream_dsl.connectors.decode_ndjson import decode_ndjson
from stream_dsl.ir.types import DataType, Schema

SCHEMA = Schema.of(("k", DataType.STRING), ("n", DataType.BIGINT), ("x", DataType.DOUBLE), ("ts", DataType.TIMESTAMP))
T0 = 1767225600000
BAD = [
    lambda i: '{"k": "a", "n": ' + str(i) + ', "x": 1.0, "ts": 17672',
    lambda i: json.dumps({"k": "a", "n": "lots", "x": 1.0, "ts": T0}),
    lambda i: json.dumps({"k": "a", "n": 1.5, "x": 1.0, "ts": T0}),
    lambda i: json.dumps({"k": "a", "n": 1, "x": 1.0, "ts": "not a time"}),
    lambda i: "[1, 2]",
    lambda i: json.dumps({"k": "a", "n": 1, "x": "abc", "ts": T0}),
]
REFUSED = lambda i: '{"k": "a", "n": 1, "x": 1e400, "ts": 1767225600000}'  # noqa: E731


def _good(i: int) -> str:
    return json.dumps({"k": f"k{i % 100}", "n": i, "x": i * 0.5, "ts": T0 + i})


def inputs(records: int, bad: float, refused: bool, seed: int = 1, structural: bool = False) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    kinds = ([BAD[0], BAD[4]] if structural else BAD) + ([REFUSED] if refused else [])
    clean = "\n".join(_good(i) for i in range(records)) + "\n"
    dirty = "\n".join(_good(i) if rng.random() >= bad else rng.choice(kinds)(i) for i in range(records)) + "\n"
    return clean.encode(), dirty.encode()


def best_cpu_seconds(data: bytes, repeat: int) -> tuple[float, int, int]:
    best, rows, letters = float("inf"), 0, 0
    for _ in range(repeat):
        start = time.process_time()
        decoded = decode_ndjson(data, SCHEMA, source="bench", origin="bench")
        best = min(best, time.process_time() - start)
        rows, letters = decoded.frame.height, len(decoded.dead_letters)
    return best, rows, letters


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--bad", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--refused", action="store_true", help="add numbers polars cannot read (1e400)")
    parser.add_argument(
        "--structural", action="store_true", help="only truncated JSON and arrays (no value of the wrong type)"
    )
    args = parser.parse_args(argv)
    clean, dirty = inputs(args.records, args.bad, args.refused, structural=args.structural)
    clean_s, _, _ = best_cpu_seconds(clean, args.repeat)
    dirty_s, rows, letters = best_cpu_seconds(dirty, args.repeat)
    print(
        f"records={args.records} bad={args.bad:.0%}{' (with refused numbers)' if args.refused else ''}: "
        f"clean {clean_s * 1000:.1f} ms, with bad records {dirty_s * 1000:.1f} ms, "
        f"ratio {dirty_s / clean_s:.2f}x ({rows} rows, {letters} dead letters)"
    )


if __name__ == "__main__":
    main()
