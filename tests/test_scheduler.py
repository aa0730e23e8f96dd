"""The scheduling decisions as pure state machines: events in, instructions out, no processes.

A two-stage query throughout: source stage 0 (one map task per batch)
shuffles into stateful stage 1 with two partitions (reduce tasks), whose
output is the query output; with two workers, reduce partition r lives on
worker r and the source on worker 1.
"""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.multiproc.autotune import AimdBounds, GroupSizer, next_group_size, overhead_fraction
from executor.query.changelog import ChangelogBuffer, fold
from executor.query.outputs import CollectOutput
from executor.multiproc.metrics import TaskMetrics, group_overhead
from executor.multiproc.policies import (
    Begin,
    Boundary,
    BspPolicy,
    DrizzlePolicy,
    Finish,
    Proceed,
    Reported,
    SendTasks,
    Shutdown,
)
from executor.multiproc.scheduler import (
    Assigned,
    AssignmentDone,
    Finished,
    InputsReady,
    Notice,
    Run,
    StageInfo,
    TaskKey,
    TaskSpec,
    Topology,
    WorkerScheduler,
    pipelines,
    place,
)
from executor.query.watermarks import Clock, WatermarkChain, WatermarkStep
from executor.multiproc.shuffle import Inbox, MapOutput, decode, encode, route
from executor.state.clocks import WM_INF, SourceClock, query_watermark
from stream_dsl.errors import DSLError
from stream_dsl.ir.types import DataType, Schema
from budget import examples

TWO_STAGES = Topology((StageInfo(0, 1, (), source=True, target=1), StageInfo(1, 2, (0,), stateful=True, target=None)))
THREE_STAGES = Topology(
    (
        StageInfo(0, 1, (), source=True, target=1),
        StageInfo(1, 2, (0,), stateful=True, target=2),
        StageInfo(2, 1, (1,), stateful=True, target=None),
    )
)
SRC, R0, R1 = (0, 0), (1, 0), (1, 1)


def runs(instructions) -> list[TaskKey]:
    return [i.spec.key for i in instructions if isinstance(i, Run)]


def spec(batch: int, stage: int, partition: int, waits=()) -> TaskSpec:
    return TaskSpec(TaskKey(batch, stage, partition), frozenset(waits))


# ---------------------------------------------------------------- the worker's readiness tracker


def test_a_reduce_task_starts_by_itself_when_its_last_notice_arrives():
    w = WorkerScheduler(0)
    out = w.handle(Assigned(0, (spec(0, 1, 0, [SRC, (2, 0)]),), last_batch=0))
    assert runs(out) == []
    assert runs(w.handle(Notice(0, SRC))) == []
    out = w.handle(Notice(0, (2, 0)))
    assert out == [InputsReady(TaskKey(0, 1, 0)), Run(spec(0, 1, 0, [SRC, (2, 0)]), "notice")]


def test_early_notices_count():
    w = WorkerScheduler(0)
    assert w.handle(Notice(0, SRC)) == []  # before the driver's message
    out = w.handle(Assigned(0, (spec(0, 1, 0, [SRC]),), last_batch=0))
    assert runs(out) == [TaskKey(0, 1, 0)]
    assert [i.trigger for i in out if isinstance(i, Run)] == ["assigned"]


def test_duplicate_notices_count_once():
    w = WorkerScheduler(0)
    w.handle(Assigned(0, (spec(0, 1, 0, [SRC, (2, 0)]),), last_batch=0))
    assert w.handle(Notice(0, SRC)) == []
    assert w.handle(Notice(0, SRC)) == []  # the same map id again: still waiting for (2, 0)
    assert runs(w.handle(Notice(0, (2, 0)))) == [TaskKey(0, 1, 0)]
    w.handle(Finished(TaskKey(0, 1, 0)))
    assert w.handle(Notice(0, SRC)) == []  # a late duplicate for a finished batch is ignored


def test_notices_are_per_batch():
    w = WorkerScheduler(0)
    w.handle(Assigned(0, (spec(0, 1, 0, [SRC]), spec(1, 1, 0, [SRC])), last_batch=1))
    assert runs(w.handle(Notice(1, SRC))) == []  # batch 1's notice does not start batch 0's task
    assert runs(w.handle(Notice(0, SRC))) == [TaskKey(0, 1, 0)]
    assert runs(w.handle(Finished(TaskKey(0, 1, 0)))) == [TaskKey(1, 1, 0)]


def test_a_waiting_task_holds_no_slot():
    """While a reduce task waits, another ready task of the same batch runs."""
    w = WorkerScheduler(1)
    out = w.handle(Assigned(0, (spec(0, 0, 0), spec(0, 1, 1, [SRC, (3, 0)])), last_batch=0))
    assert runs(out) == [TaskKey(0, 0, 0)]
    assert w.running == TaskKey(0, 0, 0)


def test_reduce_tasks_of_a_batch_run_before_map_tasks_of_the_next():
    w = WorkerScheduler(1)
    tasks = (spec(0, 0, 0), spec(0, 1, 1, [SRC, (9, 0)]), spec(1, 0, 0), spec(1, 1, 1, [SRC, (9, 0)]))
    assert runs(w.handle(Assigned(0, tasks, last_batch=1))) == [TaskKey(0, 0, 0)]
    out = w.handle(Finished(TaskKey(0, 0, 0)))
    assert runs(out) == []  # map task of batch 1 is ready, but reduce of batch 0 waits for (9, 0)
    out = w.handle(Notice(0, SRC))
    assert runs(out) == []
    assert runs(w.handle(Notice(0, (9, 0)))) == [TaskKey(0, 1, 1)]
    assert runs(w.handle(Finished(TaskKey(0, 1, 1)))) == [TaskKey(1, 0, 0)]


def test_batches_run_in_order_within_a_batch_in_stage_order():
    w = WorkerScheduler(0)
    tasks = tuple(spec(b, s, 0) for b in (2, 0, 1) for s in (1, 0))
    order = runs(w.handle(Assigned(0, tasks, last_batch=2)))
    while w.running is not None:
        order += runs(w.handle(Finished(w.running)))
    assert order == [TaskKey(b, s, 0) for b in (0, 1, 2) for s in (0, 1)]


def test_the_assignment_is_done_when_its_last_task_finishes():
    w = WorkerScheduler(0)
    w.handle(Assigned(7, (spec(0, 0, 0), spec(1, 0, 0)), last_batch=1))
    assert AssignmentDone(7) not in w.handle(Finished(TaskKey(0, 0, 0)))
    assert AssignmentDone(7) in w.handle(Finished(TaskKey(1, 0, 0)))
    assert w.idle


def test_an_assignment_without_tasks_is_done_at_once():
    w = WorkerScheduler(0)
    assert w.handle(Assigned(3, (), last_batch=4)) == [AssignmentDone(3)]


def test_finishing_a_task_that_is_not_running_is_an_error():
    w = WorkerScheduler(0)
    w.handle(Assigned(0, (spec(0, 0, 0),), last_batch=0))
    with pytest.raises(ValueError):
        w.handle(Finished(TaskKey(5, 0, 0)))


def test_old_notices_are_forgotten():
    w = WorkerScheduler(0)
    for b in range(5):
        w.handle(Notice(b, SRC))
    w.handle(Assigned(0, tuple(spec(b, 1, 0, [SRC]) for b in range(5)), last_batch=4))
    while w.running is not None:
        w.handle(Finished(w.running))
    assert set(w.seen) <= {4}


# ---------------------------------------------------------------- placement


def test_reduce_partitions_stay_on_their_worker_and_sources_are_spread():
    p = place(TWO_STAGES, 2, clock_notices=True)
    assert p.worker_of(1, 0) == 0 and p.worker_of(1, 1) == 1
    assert p.worker_of(0, 0) == 1
    assert p.receivers[0] == (0, 1)  # the source notifies both reducers
    assert p.receivers[1] == ()  # the output stage notifies nobody
    assert place(TWO_STAGES, 2, clock_notices=True) == p  # the same every group


def test_in_drizzle_sources_notify_every_stateful_worker_in_bsp_only_their_targets():
    topology = Topology(
        (
            StageInfo(0, 1, (), source=True, target=None),  # a source writing the output
            StageInfo(1, 1, (), source=True, target=2),
            StageInfo(2, 2, (1,), stateful=True, target=None),
        )
    )
    assert place(topology, 2, clock_notices=True).receivers[0] == (0, 1)
    assert place(topology, 2, clock_notices=False).receivers[0] == ()


def test_pipelined_placement_keeps_the_source_worker_for_map_tasks():
    """Drizzle: reduce partitions go on the workers without a source, so map b+1 overlaps reduce b."""
    p = place(TWO_STAGES, 2, clock_notices=True, pipelined=True)
    assert p.worker_of(0, 0) == 1
    assert p.worker_of(1, 0) == 0 and p.worker_of(1, 1) == 0
    assert p.receivers[0] == (0,)  # one receiver: both partitions travel in one notice
    assert p.tasks_on(1) == ((0, 0),)
    p4 = place(THREE_STAGES, 4, clock_notices=True, pipelined=True)
    assert p4.worker_of(0, 0) == 3
    assert {p4.worker_of(s, q) for s in (1, 2) for q in range(THREE_STAGES.stage(s).partitions)} <= {0, 1, 2}
    assert p4.receivers[0] == tuple(sorted({p4.worker_of(1, 0), p4.worker_of(1, 1), p4.worker_of(2, 0)}))


def test_pipelined_placement_needs_a_worker_without_a_source():
    assert place(TWO_STAGES, 1, clock_notices=True, pipelined=True) == place(TWO_STAGES, 1, clock_notices=True)
    two_sources = Topology(
        (
            StageInfo(0, 1, (), source=True, target=2),
            StageInfo(1, 1, (), source=True, target=2),
            StageInfo(2, 2, (0, 1), stateful=True, target=None),
        )
    )
    assert place(two_sources, 2, clock_notices=True, pipelined=True) == place(two_sources, 2, clock_notices=True)
    p = place(two_sources, 3, clock_notices=True, pipelined=True)
    assert (p.worker_of(0, 0), p.worker_of(1, 0)) == (2, 1)
    assert p.worker_of(2, 0) == p.worker_of(2, 1) == 0


def test_pipelining_is_decided_once_per_query_from_the_group_size_setting():
    assert not pipelines(1)
    assert pipelines(2) and pipelines(50) and pipelines("auto")


def test_a_pipelined_drizzle_policy_keeps_its_placement_whatever_the_group_size():
    policy = DrizzlePolicy(TWO_STAGES, workers=2, group_size=1, pipelined=True)
    first = policy.handle(Begin())
    policy.handle(Reported(0, 0))
    policy.handle(Reported(1, 0))
    later = policy.handle(Proceed(group_size=8))
    expected = place(TWO_STAGES, 2, clock_notices=True, pipelined=True)
    assert all(i.placement == expected for i in first + later)
    by_worker = {i.worker: i for i in later}
    assert {t.key.stage for t in by_worker[0].tasks} == {1} and {t.key.stage for t in by_worker[1].tasks} == {0}
    assert [i.worker for i in later] == [0, 1]  # the reducers' message first


def test_bsp_keeps_every_worker_in_every_wave():
    """BSP's barrier per stage wants each worker's share of each stage: its placement is not pipelined."""
    policy = BspPolicy(TWO_STAGES, workers=2)
    assert policy.placement == place(TWO_STAGES, 2, clock_notices=False)
    assert [i.worker for i in policy.handle(Begin())] == [1]  # the map wave
    assert [i.worker for i in policy.handle(Reported(1, 0))] == [0, 1]  # the reduce wave, in parallel


def test_group_messages_pickle_compactly():
    """A group message carries G tasks per worker: TaskSpec and TaskKey pickle positionally."""
    import pickle

    specs = DrizzlePolicy(TWO_STAGES, workers=2, group_size=50, pipelined=True).handle(Begin())[0].tasks
    data = pickle.dumps(specs, protocol=5)
    assert pickle.loads(data) == specs
    assert len(data) < 30 * len(specs)


def test_stateful_tasks_wait_for_every_source_clock_in_drizzle():
    assert TWO_STAGES.drizzle_waits(1) == frozenset({SRC})
    assert THREE_STAGES.drizzle_waits(2) == frozenset({R0, R1, SRC})
    assert THREE_STAGES.data_waits(2) == frozenset({R0, R1})
    assert TWO_STAGES.output_tasks == (R0, R1)


# ---------------------------------------------------------------- Drizzle's driver


def test_drizzle_sends_one_message_per_worker_per_group():
    policy = DrizzlePolicy(TWO_STAGES, workers=2, group_size=3)
    out = policy.handle(Begin())
    assert [type(i) for i in out] == [SendTasks, SendTasks]
    by_worker = {i.worker: i for i in out}
    assert [t.key for t in by_worker[0].tasks] == [TaskKey(b, 1, 0) for b in range(3)]
    assert [t.key for t in by_worker[1].tasks] == [k for b in range(3) for k in (TaskKey(b, 0, 0), TaskKey(b, 1, 1))]
    assert all(i.first_batch == 0 and i.last_batch == 2 for i in out)
    assert all(i.placement.receivers[0] == (0, 1) for i in out)  # map tasks carry the reducer placement


def test_drizzle_places_reduce_tasks_before_any_map_task_can_start():
    """Workers running source tasks get their group message after every other worker."""
    for topology in (TWO_STAGES, THREE_STAGES):
        for workers in (1, 2, 3, 4):
            out = DrizzlePolicy(topology, workers=workers, group_size=2).handle(Begin())
            feeds = [any(t.key.stage in topology.sources for t in i.tasks) for i in out]
            assert feeds == sorted(feeds), (workers, feeds)
            assert sorted(i.worker for i in out) == list(range(workers))


def test_drizzle_hears_back_only_at_the_group_boundary():
    policy = DrizzlePolicy(TWO_STAGES, workers=2, group_size=3)
    policy.handle(Begin())
    assert policy.handle(Reported(1, 0)) == []
    assert policy.handle(Reported(1, 0)) == []  # a duplicate report changes nothing
    assert policy.handle(Reported(0, 0)) == [Boundary(0, 0, 2)]
    out = policy.handle(Proceed(group_size=5))
    assert len(out) == 2 and all(i.first_batch == 3 and i.last_batch == 7 for i in out)
    assert policy.handle(Reported(0, 0)) == []  # a report of an older group
    policy.handle(Reported(0, 1))
    assert policy.handle(Reported(1, 1)) == [Boundary(1, 3, 7)]
    assert policy.handle(Finish()) == [Shutdown((0, 1))]
    assert policy.handle(Begin()) == []


def test_drizzle_refuses_to_proceed_before_the_boundary():
    policy = DrizzlePolicy(TWO_STAGES, workers=2, group_size=2)
    policy.handle(Begin())
    with pytest.raises(ValueError):
        policy.handle(Proceed(2))


def test_drizzle_messages_per_group_do_not_grow_with_group_size_or_stages():
    for topology in (TWO_STAGES, THREE_STAGES):
        for g in (1, 10, 100):
            policy = DrizzlePolicy(topology, workers=4, group_size=g)
            assert len(policy.handle(Begin())) == 4


def _run_group_messages(policy: DrizzlePolicy, sends: list[SendTasks]) -> tuple[list, list]:
    """Two workers given `sends` that exchange notices only (no other driver message): the (worker, task)
    pairs that ran, in order, and the policy's answers to the workers' reports."""
    queue = [
        (s.worker, Assigned(s.assignment, s.tasks, s.last_batch))
        for s in sorted(sends, key=lambda s: (s.assignment, -s.worker))
    ]
    placement = sends[0].placement
    workers = {w: WorkerScheduler(w) for w in {s.worker for s in sends}}
    ran, answers = [], []
    while queue:
        w, event = queue.pop(0)
        for instruction in workers[w].handle(event):
            if isinstance(instruction, Run):
                key = instruction.spec.key
                ran.append((w, key))
                for receiver in placement.receivers[key.stage]:
                    queue.append((receiver, Notice(key.batch, (key.stage, key.partition))))
                queue.append((w, Finished(key)))
            elif isinstance(instruction, AssignmentDone):
                answers.append(policy.handle(Reported(w, instruction.assignment)))
    for w in workers:  # on each worker the batches ran in order
        batches = [key.batch for worker, key in ran if worker == w]
        assert batches == sorted(batches)
    return ran, answers


def test_a_whole_drizzle_group_runs_with_no_driver_message_after_the_group_message():
    """Simulate two workers exchanging notices only: every task of the group runs."""
    policy = DrizzlePolicy(TWO_STAGES, workers=2, group_size=4)
    ran, answers = _run_group_messages(policy, policy.handle(Begin()))
    assert len(ran) == 4 * 3
    assert answers[-1] == [Boundary(0, 0, 3)]


def test_drizzle_sends_the_next_group_ahead_and_hears_back_at_each_boundary_in_order():
    policy = DrizzlePolicy(TWO_STAGES, workers=2, group_size=3, ahead=1)
    out = policy.handle(Begin())
    assert [(i.assignment, i.worker, i.first_batch, i.last_batch) for i in out] == [
        (0, 0, 0, 2),
        (0, 1, 0, 2),
        (1, 0, 3, 5),
        (1, 1, 3, 5),
    ]  # one message per worker per group
    assert policy.handle(Reported(0, 1)) == [] and policy.handle(Reported(1, 1)) == []  # group 1 first: no boundary
    assert policy.handle(Reported(0, 0)) == []
    with pytest.raises(ValueError):
        policy.handle(Proceed(3))
    assert policy.handle(Reported(1, 0)) == [Boundary(0, 0, 2)]
    assert policy.handle(Reported(1, 0)) == []  # a duplicate
    out = policy.handle(Proceed(group_size=2))
    assert [(type(i), getattr(i, "assignment", None)) for i in out] == [(SendTasks, 2), (SendTasks, 2), (Boundary, 1)]
    assert out[-1] == Boundary(1, 3, 5) and out[0].first_batch == 6 and out[0].last_batch == 7
    out = policy.handle(Proceed(group_size=2))
    assert [(i.assignment, i.first_batch) for i in out] == [(3, 8), (3, 8)]  # group 2 has not reported yet
    policy.handle(Reported(0, 2))
    assert policy.handle(Reported(1, 2)) == [Boundary(2, 6, 7)]
    assert policy.handle(Finish()) == [Shutdown((0, 1))]


def test_groups_sent_ahead_run_in_batch_order_on_every_worker():
    """Two workers exchanging notices only, with the next group already assigned: every task runs, in order."""
    policy = DrizzlePolicy(TWO_STAGES, workers=2, group_size=3, ahead=1)
    ran, answers = _run_group_messages(policy, policy.handle(Begin()))
    assert [a for a in answers if a] == [[Boundary(0, 0, 2)]]  # group 1 waits for the driver's Proceed
    assert len(ran) == 2 * 3 * 3
    assert policy.handle(Proceed(3))[-1] == Boundary(1, 3, 5)


# ---------------------------------------------------------------- BSP's driver


def test_bsp_launches_one_wave_at_a_time_and_waits_at_the_barrier():
    policy = BspPolicy(TWO_STAGES, workers=2)
    out = policy.handle(Begin())
    assert [(i.worker, [t.key for t in i.tasks]) for i in out] == [(1, [TaskKey(0, 0, 0)])]
    out = policy.handle(Reported(1, 0))
    assert sorted((i.worker, [t.key for t in i.tasks]) for i in out) == [
        (0, [TaskKey(0, 1, 0)]),
        (1, [TaskKey(0, 1, 1)]),
    ]
    reducer = out[0].tasks[0]
    assert reducer.waits == frozenset({SRC}) and reducer.locations == ((SRC, 1),)  # where the map output is
    assert policy.handle(Reported(0, 1)) == []  # the barrier: worker 1 has not reported
    assert policy.handle(Reported(1, 1)) == [Boundary(1, 0, 0)]
    out = policy.handle(Proceed())
    assert [t.key for i in out for t in i.tasks] == [TaskKey(1, 0, 0)]


def test_bsp_driver_messages_grow_with_batches_times_stages():
    def messages(topology: Topology, batches: int) -> int:
        policy = BspPolicy(topology, workers=2)
        count = 0
        out = policy.handle(Begin())
        for b in range(batches):
            while True:
                sends = [i for i in out if isinstance(i, SendTasks)]
                count += len(sends)
                out = []
                for s in sends:
                    out += policy.handle(Reported(s.worker, s.assignment))
                if any(isinstance(i, Boundary) for i in out):
                    break
            out = policy.handle(Proceed()) if b + 1 < batches else policy.handle(Finish())
        return count

    assert messages(TWO_STAGES, 10) == 10 * (1 + 2)
    assert messages(TWO_STAGES, 20) == 2 * messages(TWO_STAGES, 10)
    assert messages(THREE_STAGES, 10) == 10 * (1 + 2 + 1)


# ---------------------------------------------------------------- shuffle pieces


def test_an_empty_map_output_still_notifies_every_receiver():
    placement = place(TWO_STAGES, 2, clock_notices=True)
    routed = route(5, SRC, 1, {}, placement, me=1, clock=Clock(10, False), finished_at=1.0)
    assert set(routed.messages) == {0, 1}
    assert all(m.parts == () and m.clock == Clock(10, False) for m in routed.messages.values())


def test_map_output_goes_to_the_reducers_worker_as_ipc_bytes_and_stays_a_frame_locally():
    placement = place(TWO_STAGES, 2, clock_notices=True)
    parts = {0: pl.DataFrame({"x": [1, 2]}), 1: pl.DataFrame({"x": [3]})}
    routed = route(0, SRC, 1, parts, placement, me=1, clock=None, finished_at=0.0)
    remote, local = routed.messages[0], routed.messages[1]
    assert [p for p, _ in remote.parts] == [0] and isinstance(remote.parts[0][1], bytes)
    assert decode(remote.parts[0][1]).equals(parts[0])
    assert local.parts[0][1] is parts[1]
    assert routed.bytes_sent == len(remote.parts[0][1])


def test_the_inbox_concatenates_in_map_id_order_and_keeps_duplicates_once():
    inbox = Inbox()
    for stage in (3, 1, 3):
        inbox.put(MapOutput(0, (stage, 0), 5, ((0, encode(pl.DataFrame({"s": [stage]}))),)))
    frames, _ = inbox.take(0, 5, 0)
    assert [f["s"][0] for f in frames] == [1, 3]


def test_the_watermark_chain_matches_the_inline_watermark():
    deltas = [(1000, False), (None, False), (5000, False), (3000, True), (None, True)]
    chain = WatermarkChain({0: SourceClock(500)})
    clocks, expected, wm = [SourceClock(500)], [], None
    for max_ms, exhausted in deltas:
        clocks[0].observe(max_ms, exhausted)
        new = query_watermark(clocks, wm)
        expected.append(WatermarkStep(wm, new))
        wm = new
    sent = {b: {0: Clock(max_ms, ex)} for b, (max_ms, ex) in enumerate(deltas)}
    assert [chain.step(b, sent.pop) for b in range(len(deltas))] == expected
    assert expected[-1].current == WM_INF


# ---------------------------------------------------------------- AIMD


def test_aimd_grows_multiplicatively_and_shrinks_additively_within_bounds():
    bounds = AimdBounds(lower=0.05, upper=0.10, g_min=1, g_max=200)
    assert next_group_size(10, 0.30, bounds) == 20
    assert next_group_size(1, 0.30, bounds) == 2
    assert next_group_size(150, 0.30, bounds) == 200
    assert next_group_size(10, 0.01, bounds) == 9
    assert next_group_size(1, 0.01, bounds) == 1
    assert next_group_size(10, 0.07, bounds) == 10


def test_the_group_sizer_tunes_only_when_auto():
    auto = GroupSizer("auto")
    sizes = [auto.observe(0.5) for _ in range(4)]
    assert sizes == [4, 8, 16, 32]
    assert [auto.observe(0.0) for _ in range(2)] == [31, 30]
    fixed = GroupSizer(7)
    assert fixed.observe(0.9) == 7 and list(fixed.history) == [(7, 0.9)]
    with pytest.raises(DSLError):
        GroupSizer(0)
    with pytest.raises(DSLError):
        AimdBounds(lower=0.2, upper=0.1)


def test_the_overhead_is_boundary_time_over_all_time():
    def task(worker, start, end, sent=0.0):
        return TaskMetrics(0, 0, 0, worker, sent, sent, sent, 0.0, sent, start, end)

    previous: dict[int, float] = {}
    boundary, busy = group_overhead([task(0, 1.0, 4.0), task(0, 4.0, 10.0), task(1, 2.0, 9.0)], previous)
    assert (boundary, busy) == (1.0 + 2.0, 9.0 + 7.0) and previous == {0: 10.0, 1: 9.0}
    assert overhead_fraction(boundary, busy) == pytest.approx(3 / 19)
    boundary, busy = group_overhead([task(0, 12.0, 20.0, sent=11.0), task(1, 11.5, 19.0, sent=11.0)], previous)
    assert (boundary, busy) == (2.0 + 2.5, 8.0 + 7.5)
    assert overhead_fraction(0.0, 0.0) == 0.0


def test_a_report_pickles_every_field_of_its_task_metrics_and_batch_stats():
    """Both pickle positionally (`__reduce__`, cheaper per group): no field may be lost or moved."""
    import dataclasses
    import pickle

    from executor.multiproc.metrics import BatchStats
    from executor.multiproc.messages import Report
    from stream_dsl.connectors.base import DeadLetter

    task = TaskMetrics(1, 2, 3, 4, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13, 14, 15, "notice", True, 16.0)
    stats = BatchStats(
        1,
        2,
        [DeadLetter("src", "line 3", "{", "bad JSON")],
        {0: 3},
        4,
        (5,),
        {0: Clock(6, True)},
        7.0,
        [{"stage": 0, "task": 0, "rows": 8, "bytes": 9}],
        [(0, {"source": "s", "rows": 10})],
    )
    assert len(task.__reduce__()[1]) == len(dataclasses.fields(TaskMetrics))
    assert len(stats.__reduce__()[1]) == len(dataclasses.fields(BatchStats))
    report = pickle.loads(pickle.dumps(Report(1, 2, (task,), {0: stats}), protocol=5))
    assert report.tasks == (task,) and report.batches == {0: stats}


# ---------------------------------------------------------------- folding a changelog for collect()


@st.composite
def changelogs(draw):
    """Batches of (upserts, deletes) over keys k (with NULLs) and w, values v."""
    keys = st.tuples(st.sampled_from(["a", "b", None]), st.integers(0, 2))
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        ups = draw(st.lists(keys, unique=True, max_size=4))
        dels = draw(st.lists(keys, unique=True, max_size=3))
        upserts = pl.DataFrame(
            {
                "k": [k for k, _ in ups],
                "w": [w for _, w in ups],
                "v": draw(st.lists(st.integers(0, 9), min_size=len(ups), max_size=len(ups))),
            },
            schema={"k": pl.String, "w": pl.Int64, "v": pl.Int64},
        )
        deletes = (
            pl.DataFrame({"k": [k for k, _ in dels], "w": [w for _, w in dels]}, schema={"k": pl.String, "w": pl.Int64})
            if dels
            else None
        )
        parts.append((upserts, deletes))
    return parts


@settings(max_examples=examples(60), deadline=None)
@given(parts=changelogs(), start=changelogs())
def test_a_folded_changelog_has_the_effect_of_every_batch_in_order(parts, start):
    def table_after(batches):
        out = CollectOutput(Schema.of(("k", DataType.STRING), ("w", DataType.BIGINT), ("v", DataType.BIGINT)), None)
        out.group_keys = ["k", "w"]
        for upserts, deletes in start[:1] + batches:
            out.apply_changelog(upserts, deletes)
        return sorted(out.table.rows(), key=repr) if out.table is not None else []

    assert table_after([fold(parts, ["k", "w"])]) == table_after(parts)


def test_a_changelog_without_keys_keeps_the_last_nonempty_upsert():
    one = pl.DataFrame({"n": [1]})
    assert fold([(one, None), (one.clear(), None)], [])[0].equals(one)
    buffer = ChangelogBuffer([], limit=2)
    assert not buffer.add(one, None) and buffer.add(one, None)
    assert buffer.take()[0].equals(one) and buffer.take() is None
