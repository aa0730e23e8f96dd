"""Long local runs: `python -m tests.differential --seed S --count N [--minutes M] [--no-shrink]`.

Runs the cases of seeds S .. S+N-1 and prints, for each difference from
DuckDB that is not a documented one (`known.py`), the shrunk case: the
query in both dialects, the data and batch cuts, and the two answers.
Ends with a summary line: cases run, differences, documented, by kind.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from .generator import make_case
from .known import documented
from .oracle import Case, describe, disagreement
from .shrink import shrink


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.differential", description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long (wall clock)")
    parser.add_argument("--no-shrink", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    run = found = known = 0
    kinds: Counter[str] = Counter()
    for seed in range(args.seed, args.seed + args.count):
        if args.minutes is not None and time.monotonic() - started > args.minutes * 60:
            break
        case, query = make_case(seed)
        run += 1
        found_here = disagreement(case)
        if found_here is None:
            continue
        reason = documented(found_here[1], found_here[2], case, found_here[0])
        if reason is not None:
            known += 1
            kinds[reason] += 1
            continue
        found += 1
        if not args.no_shrink:
            case, query = shrink(case, query, still_fails=_undocumented_difference)
            found_here = disagreement(case) or found_here
        print(f"\n=== seed {seed}: difference\n{case.render()}\n  {describe(found_here)}", flush=True)
    elapsed = time.monotonic() - started
    print(
        f"\nran {run} cases in {elapsed:.0f}s: {found} undocumented differences, {known} documented ({dict(kinds)})",
        flush=True,
    )
    return 1 if found else 0


def _undocumented_difference(case: Case) -> bool:
    found = disagreement(case)
    return found is not None and documented(found[1], found[2], case, found[0]) is None


if __name__ == "__main__":
    sys.exit(main())
