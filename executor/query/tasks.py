"""What one task does: a stage's fused pipeline over one partition of one micro-batch, and its operator state.

A `TaskRunner` holds a query's compiled stage pipelines, the broadcast
tables and the operator state of the partitions its process hosts. The
inline executor runs every task through one runner; a worker runs the tasks
placed on it through its own. Either way a task for (stage, partition,
batch) does exactly the same thing, so every executor gives the same rows.
"""

from __future__ import annotations

from typing import Any, cast

import networkx as nx
import polars as pl

from executor import kernels
from executor.query import combine
from executor.query.diagnostics import Diagnostics, operator_key
from executor.query.lateness import late_rows_lateness, split_late_rows
from executor.query.outputs import QueryOutput
from executor.query.sink_modes import UPSERT_KEYS, changes
from executor.query.watermarks import WatermarkStep
from executor.state.distinct import DistinctState
from executor.state.top_n import TopNState
from executor.state.interval_join import IntervalJoinState
from executor.state.stream_join import StreamJoinState
from executor.state.operators import AggregateState, empty_aggregate_row, make_state
from executor.state.unmatched import UnmatchedState
from optimizer.physical.lower import stage_order
from optimizer.physical.changelog import RetractAggregateOp
from optimizer.physical.stages import AggregateOp, OutputWrite, ShuffleWrite, Stage
from stream_dsl.errors import DSLError, ExecutionError

TaskResult = dict[int, pl.DataFrame]  # a task's output frames by target partition (0: the query output)


def changelog_stage(stages: list[Stage]) -> Stage | None:
    """The stage whose aggregate writes a changelog to the output (later rows replace earlier ones per group)."""
    return next(
        (
            s
            for s in stages
            if isinstance(s.stateful, (AggregateOp, RetractAggregateOp))
            and isinstance(s.terminal, OutputWrite)
            and s.terminal.changelog
        ),
        None,
    )


def concat_inputs(frames: list[pl.DataFrame], stage: Stage) -> pl.DataFrame:
    """A reduce task's input: the pieces the map tasks sent, in map id order."""
    if not frames:
        return kernels.empty_frame(stage.head.schema)  # type: ignore[union-attr]
    if all(f.schema == frames[0].schema for f in frames[1:]):  # nothing to relax: the chunks stacked, no query
        stacked = frames[0]
        for frame in frames[1:]:
            stacked = stacked.vstack(frame)
        return stacked
    return pl.concat(frames, how="vertical_relaxed")


def skips(stage: Stage, frame: pl.DataFrame, step: WatermarkStep) -> bool:
    """A task with nothing to do: no rows, and no state that the watermark could make emit."""
    return not frame.height and (stage.stateful is None or not step.moves)


class TaskRunner:
    """A query's task programs and the operator state of the partitions this process hosts (module doc)."""

    def __init__(self, graph: nx.DiGraph, output: QueryOutput) -> None:
        self.output = output
        self.stages = stage_order(graph)
        self.pipes = {s.id: kernels.compile_pipeline(s.operators, f"stage {s.id}") for s in self.stages}
        self.pipes = combine.combined(self.stages, self.pipes)  # partial rows merged before the shuffle
        self.posts = {s.id: kernels.compile_pipeline(s.post, f"stage {s.id}") for s in self.stages if s.stateful}
        self.states: dict[
            tuple[int, int],
            AggregateState | DistinctState | TopNState | IntervalJoinState | StreamJoinState | UnmatchedState,
        ] = {}
        self.tables: dict[str, pl.DataFrame] = {}
        self.changelog_stage = changelog_stage(self.stages)
        if self.changelog_stage is not None:
            output.group_keys = list(self.changelog_stage.stateful.group_keys)  # type: ignore[union-attr]
        output.retract = any(isinstance(s.terminal, OutputWrite) and s.terminal.retract for s in self.stages)
        self.upsert_keys: list[Any] | None = graph.graph.get(UPSERT_KEYS)  # to an upsert sink (`sink_modes`)

    def run(
        self,
        stage: Stage,
        partition: int,
        frame: pl.DataFrame,
        step: WatermarkStep,
        facts: Diagnostics | None = None,
    ) -> tuple[TaskResult | None, int]:
        """One task; its output by target partition (None: nothing) and its late rows. Errors name the operator.

        `facts`: where the batch's diagnostics go (`executor/query/diagnostics.py`); operators are counted
        when its batch is sampled."""
        try:
            if stage.stateful is None:
                return self._finish(self.pipes[stage.id], stage, frame, facts, 0), 0
            return self._run_stateful(stage, partition, frame, step, facts)
        except DSLError:
            raise
        except Exception as exc:
            where = stage.stateful.describe() if stage.stateful is not None else stage.head.describe()
            raise ExecutionError(f"{where}: {kernels.error_text(exc)}") from exc

    def _run_stateful(
        self, stage: Stage, partition: int, frame: pl.DataFrame, step: WatermarkStep, facts: Diagnostics | None
    ) -> tuple[TaskResult | None, int]:
        pipe = self.pipes[stage.id]
        if len(pipe.ops) <= 1:
            rows = frame
        elif facts is not None and facts.sampled:
            rows = self._counted(pipe, stage.id, 0, frame, facts, partition=False)[0]
        else:
            rows = pipe.run(frame, self.tables)
        collected = stage is self.changelog_stage and self.output.changelog_collects
        op = stage.stateful
        assert op is not None  # only stateful stages get here
        state = self.states.get((stage.id, partition))
        if state is None:
            state = self.states[(stage.id, partition)] = make_state(op)
        if isinstance(state, AggregateState):  # new, or loaded from a checkpoint
            state.emits_rows = collected and self.output.takes_rows
        if isinstance(state, UnmatchedState):  # a RIGHT or FULL join's unmatched table rows come from its table
            state.table = self.tables[state.op.table_id]
        if isinstance(op, AggregateOp) and op.late_sink is not None:  # late rows routed to a sink
            rows, routed = split_late_rows(op, rows, step.previous)
            if routed is not None and facts is not None:
                facts.routed_late.append(routed)
        if step.emitted_through is not None:  # a restart: what the previous run emitted closes without output
            kernels.catch_operator(op, lambda: state.step(rows.clear(), None, step.emitted_through))
        out = kernels.catch_operator(op, lambda: state.step(rows, step.previous, step.current))
        if facts is not None:
            self._stateful_facts(stage, state, rows, out, step, facts)
        if collected:
            # out.frame is a RowsPart when the output takes rows (emits_rows, above): apply_changelog then
            # takes one, and callers read only `height` from a collected result, which a RowsPart has
            self.output.apply_changelog(cast(pl.DataFrame, out.frame), out.deletes)
            return {0: cast(pl.DataFrame, out.frame)}, out.late
        emitted = out.frame
        assert isinstance(emitted, pl.DataFrame)  # rows come only for a collected changelog (emits_rows)
        if stage is self.changelog_stage and self.upsert_keys is not None:
            return self._upserts(stage, emitted, out.deletes), out.late
        if not emitted.height:
            return None, out.late
        return self._finish(self.posts[stage.id], stage, emitted, facts, len(stage.operators) + 1), out.late

    def _upserts(self, stage: Stage, emitted: pl.DataFrame, deletes: pl.DataFrame | None) -> TaskResult | None:
        """A changelog's records for an upsert sink: deletes, then upserts (`sink_modes.changes`)."""
        assert self.upsert_keys is not None
        rows = self.posts[stage.id].run(emitted, self.tables) if emitted.height else None
        frame = changes(rows, emitted, deletes, self.upsert_keys)
        return {0: frame} if frame.height else None

    def _finish(
        self, pipe: kernels.Pipeline, stage: Stage, frame: pl.DataFrame, facts: Diagnostics | None, first: int
    ) -> TaskResult:
        partition = isinstance(stage.terminal, ShuffleWrite)
        if facts is not None and facts.sampled and pipe.ops:
            return self._counted(pipe, stage.id, first, frame, facts, partition)
        if partition:
            return pipe.run_partitioned(frame, self.tables)
        return {0: pipe.run(frame, self.tables)}

    def _counted(
        self, pipe: kernels.Pipeline, stage: int, first: int, frame: pl.DataFrame, facts: Diagnostics, partition: bool
    ) -> TaskResult:
        """The pipeline with its operators' rows counted (`Pipeline.counted`), noted in `facts`."""
        result, rows = pipe.counted(frame, self.tables, partition)
        for position, (rows_in, rows_out) in enumerate(zip(rows, rows[1:])):
            facts.count(operator_key(stage, first + position), rows_in, rows_out)
        return result

    def _stateful_facts(
        self, stage: Stage, state: Any, rows: pl.DataFrame, out: Any, step: WatermarkStep, facts: Diagnostics
    ) -> None:
        """The stateful operator's rows in and out (sampled batches), how late its late rows were, its open
        windows."""
        late, emitted = out.late, out.frame.height
        if facts.sampled:
            facts.count(operator_key(stage.id, len(stage.operators)), rows.height, emitted)
        if late and step.previous is not None:
            counts = late_rows_lateness(stage.stateful, rows, step.previous)
            if counts is not None:
                facts.late(stage.id, counts)
        if facts.sampled and isinstance(state, AggregateState) and state.op.window is not None:
            facts.windows(stage.id, *state.open_windows())

    def late_by_side(self) -> dict[int, tuple[int, int]]:
        """Interval joins' late rows so far, per stage: (left, right), over the partitions hosted here."""
        sides: dict[int, tuple[int, int]] = {}
        for (stage, _), state in self.states.items():
            if isinstance(state, (IntervalJoinState, StreamJoinState)):
                left, right = sides.get(stage, (0, 0))
                sides[stage] = (left + state.late_left, right + state.late_right)
        return sides

    def open_groups(self) -> int:
        """Groups (and windows) the hosted operator states hold open."""
        return sum(getattr(s, "open_groups", 0) for s in self.states.values())

    def final_changelog(self, table: pl.DataFrame | None, limit: int | None) -> pl.DataFrame:
        """collect() of a changelog: the post-operators over the last value of every group (`table`)."""
        stage = self.changelog_stage
        assert stage is not None
        op: Any = stage.stateful
        if (table is None or not table.height) and not op.keys and op.window is None:
            table = empty_aggregate_row(op)
        elif table is None:
            table = kernels.empty_frame(op.output)
        result = self.posts[stage.id].run(table, self.tables)
        result = kernels.conform(result, self.output.schema)
        result = result if limit is None else result.head(limit)
        return kernels.sort_rows(result, self.output.order, self.output.order_limit)
