"""The `console` sink: print each batch's output, for trying queries out.

Each non-empty batch is printed as a header line `-- batch N --` and the
frame as polars shows it. Options: `max_rows` (rows shown per batch,
default 20; -1 shows all) and `show_empty` ('true' also prints batches with
no rows). Output goes to the process's stdout at the time of the write.
"""

from __future__ import annotations

import sys

import polars as pl

from stream_dsl.connectors.options import as_bool, as_int, check_keys
from stream_dsl.connectors.upserts import UPSERT
from stream_dsl.connectors.option_specs import Option, option_names
from stream_dsl.ir.definitions import SinkDef
from stream_dsl.secrets import escape_frame

SINK_SPECS = (
    Option("max_rows", "int", "rows printed per batch (-1: all)", default="20", minimum=-1),
    Option("show_empty", "bool", "print batches without rows too", default="false"),
)
OPTIONS = option_names(SINK_SPECS)
OPTION_SPECS = {"sink": SINK_SPECS}


def format_frame(frame: pl.DataFrame, max_rows: int = 20) -> str:
    """A frame as a table, with ids shown whole (UUIDs are 36 characters) and control characters escaped."""
    frame = escape_frame(frame)
    with pl.Config(
        tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=64, tbl_width_chars=200, tbl_hide_dataframe_shape=False
    ):
        return str(frame)


class ConsoleSink:
    writes = UPSERT  # a changelog is printed as its upsert records, the `op` column first (as Flink's print)

    def __init__(self, definition: SinkDef) -> None:
        what = f"sink '{definition.name}'"
        check_keys(definition.options, OPTIONS, what=what)
        self.definition = definition
        self.max_rows = as_int(definition.option("max_rows", "20"), key="max_rows", what=what, minimum=-1)
        self.show_empty = as_bool(definition.option("show_empty"), key="show_empty", what=what)

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        if frame.height == 0 and not self.show_empty:
            return
        out = sys.stdout
        out.write(f"-- batch {batch_id} --\n{format_frame(frame, self.max_rows)}\n")
        out.flush()

    def close(self) -> None:
        sys.stdout.flush()


def make_sink(definition: SinkDef) -> ConsoleSink:
    return ConsoleSink(definition)
