"""Make a failing case small: fewer batches, fewer rows, simpler expressions, while it still differs.

Greedy, one change at a time, kept when the case still shows a difference
(any difference: shrinking may move to a simpler one, as SQLancer's does).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import polars as pl

from .exprs import ExprGen, simpler
from .generator import Query
from .oracle import Case, difference


def shrink(
    case: Case, query: Query, budget: int = 250, still_fails: Callable[[Case], bool] | None = None
) -> tuple[Case, Query]:
    """A smaller (case, query) that still fails; at most `budget` tries."""
    fails = still_fails or (lambda c: difference(c) is not None)
    tries = 0

    def attempt(candidate: Case) -> bool:
        nonlocal tries
        tries += 1
        return fails(candidate)

    changed = True
    while changed and tries < budget:
        changed = False
        if case.cuts and attempt(replace(case, cuts=())):
            case, changed = replace(case, cuts=()), True
        for table in ("s", "t"):
            frame: pl.DataFrame = getattr(case, table)
            step = max(frame.height // 2, 1)
            while step >= 1 and tries < budget:
                for start in range(0, frame.height, step):
                    smaller = pl.concat([frame.slice(0, start), frame.slice(start + step)])
                    candidate = replace(
                        case, **{table: smaller}, cuts=tuple(c for c in case.cuts if c < smaller.height)
                    )
                    if tries < budget and attempt(candidate):
                        case, frame, changed = candidate, smaller, True
                        break
                else:
                    step //= 2
        for name in list(query.slots):
            gen = ExprGen(_rng(), query.columns or {})
            for option in simpler(query.slots[name], gen):
                if tries >= budget:
                    break
                smaller_query = replace(query, slots={**query.slots, name: option})
                ours, duck = smaller_query.render()
                candidate = replace(case, sql=ours, duck=duck)
                if attempt(candidate):
                    case, query, changed = candidate, smaller_query, True
                    break
    return case, query


def _rng():
    import random

    return random.Random(0)
