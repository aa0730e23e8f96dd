"""Random cases: data with NULLs, NaN and extreme values, and queries of every claimed shape.

A `Query` is a pair of templates (ours, DuckDB's) whose `{slot}`s are
random expressions (`exprs.X`), so the shrinker can simplify each slot and
render the query again. Shapes: projections with WHERE, DISTINCT, ORDER BY
and LIMIT; GROUP BY with HAVING and global aggregates; TUMBLE, HOP and
SESSION windows (EMIT final or CHANGES); joins with a table (INNER, LEFT,
conditions on either side, the table joined twice); subqueries, CTEs and
UNION ALL. Each renders for DuckDB with windows as epoch-ms arithmetic.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field, replace

import polars as pl

from .exprs import STRINGS, TYPES, ExprGen, X
from .oracle import SETTINGS, Case, Setting

BASE = dt.datetime(2024, 1, 1)
S_SCHEMA = {"k": pl.String, "i": pl.Int64, "j": pl.Int32, "d": pl.Float64, "s2": pl.String, "ts": pl.Datetime("ms")}
T_SCHEMA = {"k": pl.String, "name": pl.String, "w": pl.Int64}
S_TYPES = {"k": "str", "i": "int", "j": "int", "d": "dbl", "s2": "str", "ts": "ts"}
T_TYPES = {"k": "str", "name": "str", "w": "int"}
AGG_TYPES = ("int", "dbl", "str", "ts")  # a tuple: a set's order would change the cases from run to run


@dataclass
class Query:
    """Templates in both dialects over named expression slots; `ordered`: compare row order (ORDER BY)."""

    ours: str
    duck: str
    slots: dict[str, X] = field(default_factory=dict)
    ordered: bool = False
    columns: dict[str, str] = field(default_factory=dict)  # what the slots may name (for the shrinker's leaves)

    def render(self) -> tuple[str, str]:
        return (
            self.ours.format(**{n: x.ours() for n, x in self.slots.items()}),
            self.duck.format(**{n: x.duck() for n, x in self.slots.items()}),
        )


# ---------------------------------------------------------------- data


def _cell(rng: random.Random, values: list, null: float = 0.15):
    return None if rng.random() < null else rng.choice(values)


def make_data(rng: random.Random, extremes: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = rng.choice((0, 1, 2, 3, 5, 8, 12, 12, 20))
    ints = [0, 1, -1, 2, 3, 5, -4, 6]
    if extremes:
        ints += [9223372036854775807, -9223372036854775808, 2**62, -(2**40)]
    int32 = [0, 1, -2, 7, 40] + ([2147483647, -2147483648] if extremes else [])
    dbls = [0.5, -1.5, 0.0, 2.0, 3.25, -0.0, float("nan")] + (
        [1e308, -1e308, float("inf"), float("-inf"), 1e-300] if extremes else []
    )
    strs = list(STRINGS) + ["a\tb", "x"]
    rows = {
        "k": [_cell(rng, ["a", "b", "c", ""], 0.1) for _ in range(n)],
        "i": [_cell(rng, ints) for _ in range(n)],
        "j": [_cell(rng, int32) for _ in range(n)],
        "d": [_cell(rng, dbls) for _ in range(n)],
        "s2": [_cell(rng, strs) for _ in range(n)],
        "ts": [
            None
            if rng.random() < 0.05
            else BASE
            + dt.timedelta(
                milliseconds=rng.choice((rng.randint(0, 40_000), rng.randint(0, 40_000), -rng.randint(1, 20_000)))
            )
            for _ in range(n)
        ],
    }
    s = pl.DataFrame(rows, schema=S_SCHEMA)
    m = rng.choice((0, 1, 3, 5))
    t = pl.DataFrame(
        {
            "k": [_cell(rng, ["a", "b", "d", "x"], 0.1) for _ in range(m)],
            "name": [_cell(rng, ["x", "a", "ab", "é"], 0.1) for _ in range(m)],
            "w": [_cell(rng, [0, 1, 2, -3]) for _ in range(m)],
        },
        schema=T_SCHEMA,
    )
    return s, t


# ---------------------------------------------------------------- FROM clauses


@dataclass(frozen=True)
class From:
    ours: str
    duck: str
    columns: dict[str, str]
    slots: dict[str, X] = field(default_factory=dict)


def make_from(rng: random.Random, extremes: bool) -> From:
    kind = rng.choice(("s", "s", "s", "join", "join", "join2", "selfjoin", "sub", "cte"))
    s_cols = {f"s.{c}": t for c, t in S_TYPES.items()}
    if kind == "s":
        return From("s", "s", dict(S_TYPES))
    if kind == "join":
        how = rng.choice(("JOIN", "LEFT JOIN"))
        on = rng.choice(("s.k = t.k", "s.s2 = t.name", "t.k = s.k AND s.s2 = t.name"))
        cols = {**s_cols, **{f"t.{c}": t for c, t in T_TYPES.items()}}
        slots = {}
        extra = rng.random()
        if extra < 0.25:  # a condition on the stream side
            slots["on"] = ExprGen(rng, s_cols, extremes=extremes).expr("bool", 1)
            on += " AND {on}"
        elif extra < 0.45:  # a condition on the table side
            slots["on"] = ExprGen(rng, {f"t.{c}": t for c, t in T_TYPES.items()}, extremes=extremes).expr("bool", 1)
            on += " AND {on}"
        text = f"s {how} t ON {on}"
        return From(text, text, cols, slots)
    if kind == "selfjoin":  # the table joined with itself, then with the stream
        how = rng.choice(("JOIN", "LEFT JOIN"))
        text = f"s {how} (SELECT a.k, a.w, b.name FROM t AS a JOIN t AS b ON a.k = b.name) AS u ON s.k = u.k"
        return From(text, text, {**s_cols, "u.k": "str", "u.w": "int", "u.name": "str"})
    if kind == "join2":
        first, second = rng.choice(("JOIN", "LEFT JOIN")), rng.choice(("JOIN", "LEFT JOIN"))
        text = f"s {first} t AS a ON s.k = a.k {second} t AS b ON s.s2 = b.name"
        cols = {**s_cols, **{f"a.{c}": t for c, t in T_TYPES.items()}, **{f"b.{c}": t for c, t in T_TYPES.items()}}
        return From(text, text, cols)
    where = ExprGen(rng, dict(S_TYPES), extremes=extremes).expr("bool", 1)
    inner = "SELECT k, i, j, d, s2, ts FROM s WHERE {sub}"
    cols = {f"q.{c}": t for c, t in S_TYPES.items()}
    if kind == "sub":
        return From(f"({inner}) AS q", f"({inner}) AS q", cols, {"sub": where})
    return From("q", "q", cols, {"sub": where})


def _with(source: From, ours: str, duck: str) -> tuple[str, str]:
    """Put a CTE's WITH clause in front when the FROM clause is the CTE `q`."""
    if source.ours == "q":
        prefix = "WITH q AS (SELECT k, i, j, d, s2, ts FROM s WHERE {sub}) "
        return prefix + ours, prefix + duck
    return ours, duck


# ---------------------------------------------------------------- shapes


def _items(gen: ExprGen, n: int, types: list[str] | None = None, depth: int = 3) -> tuple[list[str], dict[str, X]]:
    slots, names = {}, []
    for i in range(n):
        type_ = types[i] if types else gen.rng.choice(TYPES)
        slots[f"e{i}"] = gen.expr(type_, gen.rng.randint(0, depth))
        names.append(f"{{e{i}}} AS c{i}")
    return names, slots


def project_query(rng: random.Random, extremes: bool) -> Query:
    source = make_from(rng, extremes)
    gen = ExprGen(rng, source.columns, extremes=extremes)
    names, slots = _items(gen, rng.randint(1, 4))
    slots.update(source.slots)
    distinct = "DISTINCT " if rng.random() < 0.15 else ""
    ours = duck = f"SELECT {distinct}{', '.join(names)} FROM {{from_}}"
    if rng.random() < 0.6:
        slots["where"] = gen.expr("bool", rng.randint(1, 3))
        ours = duck = ours + " WHERE {where}"
    ordered = False
    if rng.random() < 0.2:
        order = ", ".join(f"{p + 1}{rng.choice(('', ' DESC'))}" for p in range(len(names)))
        ours = duck = ours + f" ORDER BY {order}" + (f" LIMIT {rng.randint(0, 5)}" if rng.random() < 0.5 else "")
        ordered = True
    ours, duck = ours.replace("{from_}", source.ours), duck.replace("{from_}", source.duck)
    ours, duck = _with(source, ours, duck)
    return Query(ours, duck, slots, ordered, source.columns)


def _agg(rng: random.Random, gen: ExprGen, i: int, slots: dict[str, X]) -> str:
    func = rng.choice(("COUNT(*)", "COUNT", "COUNT DISTINCT", "SUM", "AVG", "MIN", "MAX"))
    if func == "COUNT(*)":
        return "COUNT(*)"
    type_ = {"SUM": ("int", "dbl"), "AVG": ("int", "dbl")}.get(func, AGG_TYPES)
    slots[f"a{i}"] = gen.expr(rng.choice(type_), rng.randint(0, 2))
    if func == "COUNT DISTINCT":
        return f"COUNT(DISTINCT {{a{i}}})"
    return f"{func}({{a{i}}})"


def aggregate_query(rng: random.Random, extremes: bool) -> Query:
    source = make_from(rng, extremes)
    gen = ExprGen(rng, source.columns, extremes=extremes)
    slots = dict(source.slots)
    keys = []
    for g in range(rng.choice((0, 1, 1, 2))):
        key = gen.expr(rng.choice(("int", "str", "bool", "dbl")), rng.randint(0, 2))
        if key.leaf and key.type == "int" and key.ours().lstrip("-").isdigit():  # GROUP BY 2 is a position
            key = gen.column("int") or key
        slots[f"g{g}"] = key
        keys.append(f"{{g{g}}}")
    aggs = [_agg(rng, gen, a, slots) for a in range(rng.randint(1, 3))]
    select = ", ".join([f"{k} AS c{n}" for n, k in enumerate(keys)] + [f"{a} AS x{n}" for n, a in enumerate(aggs)])
    text = f"SELECT {select} FROM {source.ours}"
    if rng.random() < 0.5:
        slots["where"] = gen.expr("bool", rng.randint(1, 2))
        text += " WHERE {where}"
    if keys:
        text += " GROUP BY " + ", ".join(keys)
    if rng.random() < 0.3:
        text += " HAVING " + rng.choice(("COUNT(*) > 1", f"{aggs[0]} IS NOT NULL", "COUNT(*) < 3 OR MIN(1) = 1"))
    ours, duck = _with(source, text, text.replace(f"FROM {source.ours}", f"FROM {source.duck}"))
    if rng.random() < 0.2 and not ours.startswith("WITH"):  # a query over the aggregate's changelog
        outer = rng.choice(("x0 IS NOT NULL", "TRUE", "x0 IS NULL OR c0 IS NULL" if keys else "x0 IS NULL"))
        ours, duck = (f"SELECT * FROM ({ours}) AS g WHERE {outer}", f"SELECT * FROM ({duck}) AS g WHERE {outer}")
    return Query(ours, duck, slots, False, source.columns)


def window_query(rng: random.Random, extremes: bool) -> Query:
    """TUMBLE, HOP or SESSION over ts by k; DuckDB computes the windows in epoch ms (floor division)."""
    gen = ExprGen(rng, dict(S_TYPES), extremes=extremes)
    slots: dict[str, X] = {}
    aggs = [_agg(rng, gen, a, slots) for a in range(rng.randint(1, 3))]
    keyed = rng.random() < 0.7
    where = ""
    if rng.random() < 0.4:
        slots["where"] = gen.expr("bool", rng.randint(1, 2))
        where = " AND {where}"
    kind = rng.choice(("tumble", "tumble", "hop", "session"))
    size = rng.choice((1000, 5000, 10_000, 30_000))
    emit = " EMIT CHANGES" if rng.random() < 0.25 else ""
    key_sel, key_grp = ("k AS c0, ", "k, ") if keyed else ("", "")
    sel_aggs = ", ".join(f"{a} AS x{n}" for n, a in enumerate(aggs))
    if kind == "tumble":
        window = f"TUMBLE(ts, INTERVAL '{size // 1000}' SECOND)"
    elif kind == "hop":
        slide = rng.choice([s for s in (1000, 2000, 5000) if size % s == 0 and s <= size])
        window = f"HOP(ts, INTERVAL '{slide // 1000}' SECOND, INTERVAL '{size // 1000}' SECOND)"
    else:
        window = f"SESSION(ts, INTERVAL '{size // 1000}' SECOND)"
    ours = (
        f"SELECT {key_sel}window_start AS ws, window_end AS we, {sel_aggs} FROM s "
        f"WHERE TRUE{where} GROUP BY {key_grp}{window}{emit}"
    )
    t = "epoch_ms(ts)"
    if kind == "tumble":
        duck = (
            f"WITH w AS (SELECT *, {t} - (({t} % {size}) + {size}) % {size} AS wst FROM s "
            f"WHERE TRUE{where}) SELECT {key_sel}epoch_ms(wst) AS ws, epoch_ms(wst + {size}) AS we, "
            f"{sel_aggs} FROM w WHERE wst IS NOT NULL GROUP BY {key_grp}wst"
        )
    elif kind == "hop":
        first = f"{t} - (({t} % {slide}) + {slide}) % {slide}"
        duck = (
            f"WITH w AS (SELECT *, unnest(range({first}, {t} - {size}, -{slide})) AS wst FROM s "
            f"WHERE TRUE{where}) SELECT {key_sel}epoch_ms(wst) AS ws, epoch_ms(wst + {size}) AS we, "
            f"{sel_aggs} FROM w WHERE wst IS NOT NULL GROUP BY {key_grp}wst"
        )
    else:
        part = "PARTITION BY k " if keyed else ""
        duck = (
            f"WITH e0 AS (SELECT * FROM s WHERE TRUE{where}), "
            f"e AS (SELECT *, {t} AS tm, row_number() OVER () AS rn FROM e0 WHERE ts IS NOT NULL), "
            f"f AS (SELECT *, CASE WHEN tm - LAG(tm) OVER ({part}ORDER BY tm, rn) < {size} THEN 0 ELSE 1 END "
            f"AS brk FROM e), g AS (SELECT *, SUM(brk) OVER ({part}ORDER BY tm, rn ROWS UNBOUNDED PRECEDING) "
            f"AS sid FROM f) SELECT {key_sel}epoch_ms(MIN(tm)) AS ws, epoch_ms(MAX(tm) + {size}) AS we, "
            f"{sel_aggs} FROM g GROUP BY {key_grp}sid"
        )
    return Query(ours, duck, slots, False, dict(S_TYPES))


def union_query(rng: random.Random, extremes: bool) -> Query:
    n = rng.randint(1, 3)
    types = [rng.choice(TYPES) for _ in range(n)]
    parts, slots = [], {}
    for side in range(rng.choice((2, 2, 3))):
        source = make_from(rng, extremes) if side == 0 or rng.random() < 0.5 else From("s", "s", dict(S_TYPES))
        if source.ours == "q":  # a CTE must come first: use the subquery form inside a union
            source = From(source.ours.replace("q", "q"), "q", source.columns, source.slots)
            source = replace(
                source,
                ours="(SELECT k, i, j, d, s2, ts FROM s WHERE {sub}) AS q",
                duck="(SELECT k, i, j, d, s2, ts FROM s WHERE {sub}) AS q",
            )
        gen = ExprGen(rng, source.columns, extremes=extremes)
        names, these = _items(gen, n, types, depth=2)
        renamed = {f"u{side}{k}": v for k, v in these.items()}
        select = ", ".join(x.replace("{e", f"{{u{side}e") for x in names)
        sub = {f"u{side}{k}": v for k, v in source.slots.items()}
        from_ = source.ours.replace("{sub}", f"{{u{side}sub}}").replace("{on}", f"{{u{side}on}}")
        parts.append(f"SELECT {select} FROM {from_}")
        slots.update(renamed)
        slots.update(sub)
    text = " UNION ALL ".join(parts)
    return Query(text, text, slots, False, {})


SHAPES = ((project_query, 4), (aggregate_query, 3), (window_query, 2), (union_query, 1))


def make_case(seed: int) -> tuple[Case, Query]:
    """The case of this seed: data, batches, a watermark or not, the query, and the settings to run."""
    rng = random.Random(seed)
    extremes = rng.random() < 0.3
    s, t = make_data(rng, extremes)
    makers = [m for m, w in SHAPES for _ in range(w)]
    query = rng.choice(makers)(rng, extremes)
    watermark = rng.random() < 0.4
    if watermark:
        s = s.sort("ts", nulls_last=False, maintain_order=True)
    cuts = tuple(sorted(rng.sample(range(1, s.height), min(rng.randint(0, 4), s.height - 1)))) if s.height > 1 else ()
    settings = (SETTINGS[0], rng.choice(SETTINGS[1:] + (Setting(3, False),)))
    ours, duck = query.render()
    return Case(ours, s, t, cuts, watermark, duck, query.ordered, settings), query
