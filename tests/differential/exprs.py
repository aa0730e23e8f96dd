"""Random typed expressions over the claimed SQL surface, written in our dialect and in DuckDB's.

An `X` is an expression tree; each node renders itself in both dialects
(they differ in a few spellings: DOUBLE literals, CAST targets, epoch ms
to TIMESTAMP). Types: 'int' (BIGINT), 'dbl' (DOUBLE), 'str', 'bool', 'ts'.
The shrinker replaces nodes by their children or by leaves of the same type.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

TYPES = ("int", "dbl", "str", "bool", "ts")
DUCK_TYPE = {"int": "BIGINT", "dbl": "DOUBLE", "str": "VARCHAR", "bool": "BOOLEAN", "ts": "TIMESTAMP"}


@dataclass(frozen=True)
class X:
    """A node: `ours` and `duck` are format strings over the children ({0}, {1}, ...), or the text of a leaf."""

    type: str
    ours_fmt: str
    duck_fmt: str | None = None
    kids: tuple["X", ...] = ()
    leaf: bool = field(default=False)

    def ours(self) -> str:
        return self.ours_fmt if self.leaf else self.ours_fmt.format(*(k.ours() for k in self.kids))

    def duck(self) -> str:
        fmt = self.ours_fmt if self.duck_fmt is None else self.duck_fmt
        return fmt if self.leaf else fmt.format(*(k.duck() for k in self.kids))

    def size(self) -> int:
        return 1 + sum(k.size() for k in self.kids)


def leaf(type_: str, ours: str, duck: str | None = None) -> X:
    return X(type_, ours, duck, (), True)


def node(type_: str, ours: str, kids: tuple[X, ...], duck: str | None = None) -> X:
    return X(type_, ours, duck, kids)


INTS = (
    0,
    1,
    -1,
    2,
    3,
    7,
    -3,
    100,
    2147483647,
    -2147483648,
    9223372036854775807,
    -9223372036854775807,
    -9223372036854775808,
    4611686018427387904,
)
DOUBLES = ("0.5", "-1.5", "0.0", "2.25", "1e308", "-1e-300", "3.0", "10.0", "0.1")
STRINGS = ("a", "", "ab", " a ", "%", "_b", "é", "12", "-3.5", "2024-01-01 00:00:01", "a%", "B")
TIMESTAMPS = ("2024-01-01 00:00:00", "2024-01-01 00:00:20", "1969-12-31 23:59:59.5", "2024-01-01 00:00:05.25")
INTERVALS = (("1", "SECOND", 1000), ("10", "SECOND", 10_000), ("2", "MINUTE", 120_000), ("1", "DAY", 86_400_000))
ALIASES = {
    "substring": ("substr",),
    "length": ("char_length", "len"),
    "ceil": ("ceiling",),
    "power": ("pow",),
    "coalesce": ("ifnull",),
    "upper": ("ucase",),
    "lower": ("lcase",),
}
LIKE_PATTERNS = ("a%", "%a", "_", "%", "a_", "%.%", "", "é%", "%b%")


class ExprGen:
    """Random expressions of a wanted type over `columns` (text as written in the query → type)."""

    def __init__(self, rng: random.Random, columns: dict[str, str], *, extremes: bool = True) -> None:
        self.rng = rng
        self.columns = columns
        self.extremes = extremes

    # ------------------------------------------------------------ leaves

    def column(self, type_: str) -> X | None:
        names = [c for c, t in self.columns.items() if t == type_]
        return leaf(type_, self.rng.choice(names)) if names else None

    def literal(self, type_: str) -> X:
        r = self.rng
        if r.random() < 0.08:  # DuckDB cannot pick a function for an untyped NULL: it gets the type there
            if type_ == "ts":  # NULL + INTERVAL is refused by both: which type would NULL be?
                return leaf(type_, "CAST(NULL AS TIMESTAMP)")
            # An integer NULL is INTEGER for DuckDB, the narrowest: our untyped NULL takes the other operand's
            # type (GREATEST(NULL, j) is INT, as j), and so does DuckDB's INTEGER one; a BIGINT one would widen.
            duck_type = "INTEGER" if type_ == "int" else DUCK_TYPE[type_]
            return leaf(type_, "NULL", f"CAST(NULL AS {duck_type})")
        if type_ == "int":
            v = r.choice(INTS if self.extremes else INTS[:8])
            return leaf("int", str(v), f"CAST({v} AS BIGINT)")
        if type_ == "dbl":
            v = r.choice(DOUBLES)
            return leaf("dbl", v, f"CAST({v} AS DOUBLE)")
        if type_ == "str":
            return leaf("str", "'" + r.choice(STRINGS) + "'")
        if type_ == "bool":
            return leaf("bool", r.choice(("TRUE", "FALSE")))
        return leaf("ts", f"TIMESTAMP '{r.choice(TIMESTAMPS)}'")

    def leaf_of(self, type_: str) -> X:
        col = self.column(type_) if self.rng.random() < 0.7 else None
        return col or self.literal(type_)

    # ------------------------------------------------------------ trees

    def expr(self, type_: str, depth: int = 3) -> X:
        if depth <= 0 or self.rng.random() < 0.25:
            return self.leaf_of(type_)
        makers = getattr(self, f"_{type_}")()
        made = self.rng.choice(makers)(depth - 1)
        name = made.ours_fmt.split("(", 1)[0]
        if name in ALIASES and self.rng.random() < 0.3:  # another spelling of the same function, ours only
            alias = self.rng.choice(ALIASES[name])
            return X(made.type, alias + made.ours_fmt[len(name) :], made.duck_fmt or made.ours_fmt, made.kids)
        return made

    def _num(self, depth: int) -> X:
        return self.expr(self.rng.choice(("int", "dbl")), depth)

    def _int(self):
        e, r = self.expr, self.rng
        return [
            lambda d: node("int", "({0} " + r.choice("+-*") + " {1})", (e("int", d), e("int", d))),
            lambda d: node("int", "({0} % {1})", (e("int", d), e("int", d))),
            lambda d: node("int", "(- {0})", (e("int", d),)),
            lambda d: node("int", "abs({0})", (e("int", d),)),
            lambda d: node("int", "length({0})", (e("str", d),)),
            lambda d: node("int", "CAST({0} AS BIGINT)", (e(r.choice(("dbl", "str", "bool")), d),)),
            lambda d: node("int", "epoch_ms({0})", (e("ts", d),)),
            lambda d: node("int", r.choice(("hour", "minute", "second")) + "({0})", (e("ts", d),)),
            lambda d: self.case("int", d),
            lambda d: node("int", "coalesce({0}, {1})", (e("int", d), e("int", d))),
            lambda d: node("int", r.choice(("greatest", "least")) + "({0}, {1})", (e("int", d), e("int", d))),
            lambda d: node("int", "nullif({0}, {1})", (e("int", d), e("int", d))),
        ]

    def _dbl(self):
        e, r = self.expr, self.rng
        unary = ("floor", "ceil", "sqrt", "exp", "ln", "log10", "abs")
        return [
            lambda d: node("dbl", "({0} " + r.choice("+-*/%") + " {1})", (e("dbl", d), self._num(d))),
            lambda d: node("dbl", "({0} / {1})", (e("int", d), e("int", d))),
            lambda d: node("dbl", "(- {0})", (e("dbl", d),)),
            lambda d: node("dbl", r.choice(unary) + "({0})", (self._num(d),)),
            lambda d: node("dbl", "round({0})", (self._num(d),)),
            lambda d: node("dbl", "round({0}, " + str(r.choice((-2, -1, 0, 1, 2))) + ")", (self._num(d),)),
            lambda d: node("dbl", "log({0}, {1})", (self._num(d), self._num(d))),
            lambda d: node("dbl", "power({0}, {1})", (self._num(d), self._num(d))),
            lambda d: node("dbl", "CAST({0} AS DOUBLE)", (e(r.choice(("int", "str")), d),)),
            lambda d: self.case("dbl", d),
            lambda d: node("dbl", r.choice(("greatest", "least")) + "({0}, {1})", (e("dbl", d), self._num(d))),
            lambda d: node("dbl", "coalesce({0}, {1})", (e("dbl", d), e("dbl", d))),
        ]

    def _str(self):
        e, r = self.expr, self.rng
        return [
            lambda d: node("str", r.choice(("upper", "lower", "trim", "ltrim", "rtrim")) + "({0})", (e("str", d),)),
            lambda d: node("str", "substring({0}, " + str(r.choice((0, 1, 2, 3))) + ")", (e("str", d),)),
            lambda d: node("str", f"substring({{0}}, {r.choice((1, 2))}, {r.choice((0, 1, 2, 5))})", (e("str", d),)),
            lambda d: node("str", "replace({0}, {1}, {2})", (e("str", d), self.literal("str"), e("str", d))),
            lambda d: node("str", "concat({0}, {1})", (e("str", d), e(r.choice(TYPES), d))),
            lambda d: node("str", "({0} || {1})", (e("str", d), e(r.choice(("str", "int", "ts")), d))),
            lambda d: node(
                "str", "CAST({0} AS STRING)", (e(r.choice(("int", "bool", "ts", "str")), d),), "CAST({0} AS VARCHAR)"
            ),
            lambda d: self.case("str", d),
            lambda d: node("str", "coalesce({0}, {1})", (e("str", d), e("str", d))),
            lambda d: node("str", "nullif({0}, {1})", (e("str", d), e("str", d))),
        ]

    def _bool(self):
        e, r = self.expr, self.rng
        cmp = ("=", "<>", "<", "<=", ">", ">=")

        def compare(d: int) -> X:
            t = r.choice(("int", "dbl", "str", "ts", "num"))
            left, right = (self._num(d), self._num(d)) if t == "num" else (e(t, d), e(t, d))
            return node("bool", "({0} " + r.choice(cmp) + " {1})", (left, right))

        def in_list(d: int) -> X:
            t = r.choice(("int", "str"))
            items = tuple(self.literal(t) for _ in range(r.randint(1, 3)))
            slots = ", ".join(f"{{{i + 1}}}" for i in range(len(items)))
            neg = r.choice(("", "NOT "))
            return node("bool", "({0} " + neg + "IN (" + slots + "))", (e(t, d),) + items)

        return [
            compare,
            compare,
            lambda d: node("bool", "({0} " + r.choice(("AND", "OR")) + " {1})", (e("bool", d), e("bool", d))),
            lambda d: node("bool", "(NOT {0})", (e("bool", d),)),
            lambda d: node("bool", "({0} IS " + r.choice(("", "NOT ")) + "NULL)", (e(r.choice(TYPES), d),)),
            in_list,
            lambda d: node("bool", "({0} BETWEEN {1} AND {2})", (self._num(d), self._num(d), self._num(d))),
            lambda d: node(
                "bool", "({0} " + r.choice(("", "NOT ")) + "LIKE '" + r.choice(LIKE_PATTERNS) + "')", (e("str", d),)
            ),
            lambda d: node(
                "bool",
                r.choice(("starts_with", "ends_with", "contains")) + "({0}, {1})",
                (e("str", d), self.literal("str")),
            ),
            lambda d: self.case("bool", d),
        ]

    def _ts(self):
        e, r = self.expr, self.rng

        def shifted(d: int) -> X:
            n, unit, _ = r.choice(INTERVALS)
            return node("ts", "({0} " + r.choice("+-") + f" INTERVAL '{n}' {unit})", (e("ts", d),))

        return [
            shifted,
            lambda d: node("ts", "CAST({0} AS TIMESTAMP)", (e("int", d),), "epoch_ms({0})"),
            lambda d: node("ts", "to_timestamp_ms({0})", (e("int", d),), "epoch_ms({0})"),
            lambda d: self.case("ts", d),
            lambda d: node("ts", "coalesce({0}, {1})", (e("ts", d), e("ts", d))),
        ]

    def case(self, type_: str, depth: int) -> X:
        n = self.rng.randint(1, 3)
        kids: list[X] = []
        parts = []
        for i in range(n):
            kids += [self.expr("bool", depth), self.expr(type_, depth)]
            parts.append(f"WHEN {{{2 * i}}} THEN {{{2 * i + 1}}}")
        if self.rng.random() < 0.6:
            kids.append(self.expr(type_, depth))
            parts.append(f"ELSE {{{len(kids) - 1}}}")
        return node(type_, "CASE " + " ".join(parts) + " END", tuple(kids))


def simpler(x: X, gen: ExprGen) -> list[X]:
    """Smaller expressions of the same type to try in place of `x` (children first, then leaves)."""
    out = [k for k in x.kids if k.type == x.type]
    if not x.leaf:
        col = gen.column(x.type)
        out += ([col] if col else []) + [gen.literal(x.type)]
    return out
