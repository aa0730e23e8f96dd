"""The names of the columns the engine makes for itself, defined once.

WINDOW_START and WINDOW_END are the window bounds users see and select.
Every other name here starts with RESERVED_PREFIX, so it never clashes
with a column of the user's: `is_reserved` names are refused where a
source declares its columns (`definitions.SourceDef`, the binder's CREATE) and
where a query names an output (SQL aliases, the dataframe API).

Partial aggregate state, per aggregate number `i` (`partial_state.state_fields`; the
same names in the shuffle between the two phases and in `executor/state.py`'s
per-group state): COUNT keeps `count_col(i)`; SUM and AVG a sum `sum_col(i)`
and a count of non-NULL values `nonnull_col(i)`; MIN and MAX
`extreme_col(func, i)`. Every name made from an index is a distinct letter
code then the digits of the index, so names are unique per kind and index.

This module sits with the IR (the plan names the partial state columns)
and imports nothing, so every layer can use it.
"""

from __future__ import annotations

RESERVED_PREFIX = "__sd_"

# ---------------------------------------------------------------- visible to users

WINDOW_START = "window_start"
WINDOW_END = "window_end"

# ---------------------------------------------------------------- between stages

TIME_COLUMN = "__sd_time"  # the window's event time, computed before a windowed aggregate
PARTITION_COLUMN = "__sd_part"  # a row's shuffle partition
ROW_COLUMN = "__sd_row"  # carries the rows of a COUNT(*)-only aggregate, which needs no column
PARTIAL_ROWS = "__sd_rows"  # input rows per partial group: late rows stay counted in rows, not groups
PARTIAL_DISTINCT = "__sd_dv"  # the COUNT(DISTINCT x) argument, grouped on by the partial


def arg_column(i: int) -> str:
    """The pre-computed argument of aggregate number `i`."""
    return f"__sd_arg{i}"


# ---------------------------------------------------------------- partial aggregate state


def count_col(i: int) -> str:
    """COUNT number `i`: its count."""
    return f"__sd_c{i}"


def sum_col(i: int) -> str:
    """SUM or AVG number `i`: the sum of its non-NULL values."""
    return f"__sd_s{i}"


def nonnull_col(i: int) -> str:
    """SUM or AVG number `i`: how many values were not NULL (a SUM of only NULLs is NULL)."""
    return f"__sd_n{i}"


def extreme_col(func: str, i: int) -> str:
    """MIN or MAX (`func`) number `i`: the smallest or largest value so far."""
    if func not in ("min", "max"):
        raise ValueError(f"extreme_col is for MIN and MAX, not {func!r}")
    return f"__sd_{func}{i}"


def udf_state_col(i: int) -> str:
    """Aggregate UDF number `i`: its state, pickled (stream_dsl/ir/udfs.py)."""
    return f"__sd_u{i}"


def distinct_count_col(i: int) -> str:
    """COUNT(DISTINCT x) number `i`: the size of the group's value set, computed when the group is emitted."""
    return f"__sd_d{i}"


def output_col(j: int) -> str:
    """Output column number `j` of an aggregate while it is computed next to the state (whose keys it may share)."""
    return f"__sd_o{j}"


# ---------------------------------------------------------------- broadcast joins


def join_stream_key(i: int) -> str:
    """Key number `i` of a broadcast join, cast to the common type, on the stream side."""
    return f"__sd_lk{i}"


def join_table_key(i: int) -> str:
    """Key number `i` of a broadcast join, cast to the common type, on the table side."""
    return f"__sd_rk{i}"


TABLE_ROW = "__sd_tid"  # a broadcast table row's number, so a RIGHT or FULL join knows which rows matched


def join_table_col(name: str) -> str:
    """The table side's column `name`, renamed apart from the stream side's columns."""
    return f"__sd_r_{name}"


# ---------------------------------------------------------------- scratch columns inside one operator

EVENT_MS = "__sd_t"  # the event time in epoch milliseconds
HOP_OFFSET = "__sd_j"  # which of a row's HOP windows a copy of the row is for
LATE = "__sd_late"  # whether a row is late
NEW = "__sd_new"  # a fused aggregate state's column: the group changed in the batch just merged
VALUE = "__sd_v"  # a COUNT(DISTINCT) value
SOURCE = "__sd_src"  # a session interval: 0 from the state, 1 from the batch
SESSION_ID = "__sd_sid"  # a session's number within its key
ROW_INDEX = "__sd_i"  # a batch row's position
MERGED_START = "__sd_ws"  # a session interval's merged session start
MERGED_END = "__sd_we"  # and end
MOVED_START = "__sd_nws"  # a merged-away session's new start, for its COUNT(DISTINCT) sets
MOVED_END = "__sd_nwe"  # and end
CHANGELOG_OP = "__sd_op"  # a changelog row's operation (insert or delete)
NULL_ROW_FIELD = "__sd_null"  # a Redis stream entry's only field when every column of its row is NULL

SCRATCH = (
    EVENT_MS,
    HOP_OFFSET,
    LATE,
    NEW,
    VALUE,
    SOURCE,
    SESSION_ID,
    ROW_INDEX,
    MERGED_START,
    MERGED_END,
    MOVED_START,
    MOVED_END,
    CHANGELOG_OP,
    NULL_ROW_FIELD,
)
FIXED = (TIME_COLUMN, PARTITION_COLUMN, ROW_COLUMN, PARTIAL_ROWS, PARTIAL_DISTINCT, TABLE_ROW) + SCRATCH


def is_reserved(name: str) -> bool:
    """Whether `name` belongs to the engine: user columns may not have it."""
    return name.startswith(RESERVED_PREFIX)


def reserved_message(name: str, what: str = "column") -> str:
    """Why a user's column name with the reserved prefix is refused."""
    return (
        f"{what} name '{name}' starts with '{RESERVED_PREFIX}', which stream-dsl keeps for the columns "
        f"it adds itself; rename it"
    )
