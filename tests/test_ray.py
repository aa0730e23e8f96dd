"""The Drizzle executor on a real two-node Ray cluster (tests/ray_cluster.py): results and recovery.

The YSB query of tests/recovery_script.py runs with `transport='ray'`
into a files sink with a checkpoint directory, and the sink's committed
output must equal the inline executor's result exactly: with the two
workers on different nodes; after a worker actor's process is SIGKILLed;
after the second node is removed from the cluster while the query runs.
The transport conformance suite runs on the same cluster
(tests/test_transport_conformance.py).
"""

from __future__ import annotations

import os
import signal

import pytest

import test_recovery as TR

pytestmark = [pytest.mark.ray, pytest.mark.multiprocess]

# Half test_recovery's stream (6 groups of 10 batches): a kill or node loss at a quarter still lands mid-stream, after
# the first checkpoint, with several groups after it; each query on Ray costs about its batch count.
BATCHES = 60


@pytest.fixture(scope="module")
def expected():
    """The recovery query's result without failures (test_recovery's reference), over this module's stream."""
    return TR.reference_output(BATCHES)


def node_ips(pids: list[int]) -> set[str | None]:
    """The IPs of the nodes the Ray actors with these process ids run on (Ray's actor table, from the GCS)."""
    from ray._private import state

    where = {a["Pid"]: a["Address"]["IPAddress"] for a in state.actors().values() if a["State"] == "ALIVE"}
    return {where.get(pid) for pid in pids}


def start(tmp_path, cluster, **options):
    return TR.start(tmp_path, transport="ray", ray_address=cluster.address, batches=BATCHES, **options)


def test_ysb_on_two_nodes_equals_inline_and_a_second_query_reuses_the_warm_actors(tmp_path, ray_cluster, expected):
    from executor.multiproc.ray_transport import drop_warm_actors

    ray_cluster.ensure_second_node()
    drop_warm_actors()  # fresh actors, spread over both nodes
    handle = start(tmp_path, ray_cluster)
    try:
        ips = node_ips(handle.worker_pids())
        TR.finish(handle)
    finally:
        handle.stop(TR.HANG_GUARD_S)
    assert ips == {"127.0.0.2", "127.0.0.3"}, "the two workers should run on different nodes"
    assert handle.recoveries == []
    TR.assert_exact(tmp_path / "out", expected)
    again = start(tmp_path / "again", ray_cluster)
    try:
        TR.finish(again)
    finally:
        again.stop(TR.HANG_GUARD_S)
    assert sorted(again.worker_pids()) == sorted(handle.worker_pids()), "the actors were not kept warm"
    TR.assert_exact(tmp_path / "again" / "out", expected)


def test_a_sigkilled_worker_actor_is_replaced_and_the_output_is_exact(tmp_path, ray_cluster, expected):
    handle = start(tmp_path, ray_cluster)
    try:
        TR.wait_until(lambda: TR.position(handle) >= BATCHES // 4 or not handle.is_active, "a quarter")
        assert handle.is_active, "the query ended before the kill"
        survivor, victim = handle.worker_pids()
        os.kill(victim, signal.SIGKILL)
        TR.wait_until(TR.recovered(handle, 1), "the recovery")
        after = handle.worker_pids()
        TR.finish(handle)
    finally:
        handle.stop(TR.HANG_GUARD_S)
    (recovery,) = handle.recoveries
    assert (recovery["worker"], recovery["reason"], recovery["exit_code"]) == (1, "exited", -signal.SIGKILL)
    assert survivor in after and victim not in after, "only the lost worker's actor is replaced"
    TR.assert_exact(tmp_path / "out", expected)


def test_losing_a_node_replaces_its_workers_and_the_output_is_exact(tmp_path, ray_cluster, expected):
    from executor.multiproc.ray_transport import drop_warm_actors

    ray_cluster.ensure_second_node()
    drop_warm_actors()  # fresh actors, spread over both nodes
    handle = start(tmp_path, ray_cluster)
    try:
        assert node_ips(handle.worker_pids()) == {"127.0.0.2", "127.0.0.3"}
        TR.wait_until(lambda: TR.position(handle) >= BATCHES // 4 or not handle.is_active, "a quarter")
        assert handle.is_active, "the query ended before the node was removed"
        second = ray_cluster.second
        ray_cluster.second = None
        ray_cluster.cluster.remove_node(second)
        TR.wait_until(TR.recovered(handle, 1), "the recovery")
        ips = node_ips(handle.worker_pids())
        TR.finish(handle)
    finally:
        handle.stop(TR.HANG_GUARD_S)
        ray_cluster.ensure_second_node()
    assert len(handle.recoveries) >= 1
    assert ips == {"127.0.0.2"}, "the new workers run on the node that is left"
    TR.assert_exact(tmp_path / "out", expected)


def test_a_files_source_runs_on_the_drivers_node_in_every_part(tmp_path, ray_cluster):
    """Files are the driver machine's: the actors that read them are placed on its node, the others spread."""
    import ray
    from ray._private import state

    import stream_dsl as sd
    from executor.multiproc.ray_transport import drop_warm_actors
    from test_source_splits import write_files

    ray_cluster.ensure_second_node()
    drop_warm_actors()  # fresh actors, spread over both nodes unless pinned
    write_files(tmp_path, [f"part-{i:03}.ndjson" for i in range(8)])
    query = "SELECT k, window_start, COUNT(*) AS n, SUM(v) AS sv FROM s GROUP BY k, TUMBLE(ts, INTERVAL '50' SECOND)"

    def run(**options):
        ctx = sd.Context(**options)
        ctx.sql(
            f"CREATE STREAM s (k STRING, v BIGINT, ts TIMESTAMP) WITH (connector = 'files', path = '{tmp_path}', "
            "format = 'ndjson', max_files_per_batch = '1', splits = 'workers')"
        )
        return ctx.sql(query).collect().sort("k", "window_start")

    expected = run(executor="inline", workers=1)
    got = run(executor="drizzle", workers=2, transport="ray", ray_address=ray_cluster.address)
    assert got.equals(expected)
    here = ray.get_runtime_context().get_node_id()  # the driver's node
    alive = [a for a in state.actors().values() if a["State"] == "ALIVE" and "RayWorker" in a["ActorClassName"]]
    assert len(alive) == 2, alive  # the query's two workers, kept warm
    assert {a["Address"]["NodeID"] for a in alive} == {here}


def test_the_differential_suite_on_ray_gives_the_inline_results(ray_cluster):
    """Every differential query, Drizzle and BSP, 3 workers over both nodes (warm actors after the first)."""
    from test_differential import QUERIES, assert_same_rows
    from test_multiproc import CTX, plan_of

    from executor.api import collect
    from executor.inline import collect_plan
    from stream_dsl.config import RunConfig

    ray_cluster.ensure_second_node()
    for query in QUERIES:
        plan = plan_of(CTX, query.dsl)
        expected = collect_plan(plan, RunConfig(workers=1, executor="inline")).rows()
        for executor in ("drizzle", "bsp"):
            config = RunConfig(
                workers=3, executor=executor, group_size=3, transport="ray", ray_address=ray_cluster.address
            )
            assert_same_rows(collect(plan, config).rows(), expected, f"{query.name} {executor} on ray")


def test_a_worker_actor_sizes_polars_thread_pool_from_its_cpus(ray_cluster):
    import transport_probe as probe

    from executor.multiproc.ray_transport import RayTransport

    transport = RayTransport(1, address=ray_cluster.address, cpus_per_worker=2)
    try:
        transport.start_worker(0, probe.report_threads)
        message = None
        for _ in range(int(TR.HANG_GUARD_S)):  # a hang guard only
            message = transport.receive(1.0)
            if message is not None or transport.dead_workers():
                break
        assert message == ("threads", 2, "2")
        transport.shutdown(timeout=30.0, message="stop")
        assert transport.exit_codes == {0: 0}
    finally:
        transport.abort()


def test_shared_data_goes_into_the_object_store_once_and_messages_carry_a_handle(ray_cluster):
    """The broadcast tables of a query: put once, and each worker's Setup message names them in a few bytes."""
    import pickle

    from executor.multiproc.ray_transport import RayTransport

    transport = RayTransport(2, address=ray_cluster.address)
    try:
        blob = os.urandom(1 << 20)
        handle = transport.share(blob)
        assert len(pickle.dumps(handle)) < 100  # what each Setup message carries instead of the table
    finally:
        transport.abort()


def test_python_udfs_reach_the_actors_once_per_query(ray_cluster):
    """A scalar and an aggregate UDF (issue 23) travel in each actor's Setup: one serialization per worker."""
    import polars as pl

    import stream_dsl as sd
    from stream_dsl.ir import udfs

    def run(**options):
        ctx = sd.Context(**options)
        ctx.from_polars([pl.DataFrame({"k": ["a", "b"], "x": [i, i + 1]}) for i in range(12)], name="s")
        ctx.register_function("ray_inverse", lambda x: 1 / x, returns="DOUBLE")
        ctx.register_aggregate(
            "ray_total", lambda: 0, lambda s, x: s + x, lambda a, b: a + b, lambda s: s, returns="BIGINT"
        )
        return ctx.sql("SELECT k, ray_total(x) AS t, max(ray_inverse(x)) AS m FROM s GROUP BY k").collect().sort("k")

    try:
        expected = run(executor="inline", workers=1)
        udfs.SERIALIZED.clear()
        got = run(executor="drizzle", workers=2, group_size=3, transport="ray", ray_address=ray_cluster.address)
        assert got.equals(expected)
        assert dict(udfs.SERIALIZED) == {"ray_inverse": 2, "ray_total": 2}
    finally:
        udfs.unregister("ray_inverse")
        udfs.unregister("ray_total")


def test_group_reads_on_ray_give_each_batch_what_inline_gives(tmp_path, ray_cluster):
    """A group's small file batches read in one query on the actors (executor/query/fused_group.py): batch by
    batch the inline executor's rows, and the group query is the path taken."""
    import test_group_reads as G

    files = [[{"k": "abc"[(i + j) % 3], "x": j - 2, "s": 3 * i + j} for j in range(5)] for i in range(12)]
    G.write(tmp_path / "data", files, "ndjson", bad=frozenset({4}))
    want, want_letters, _ = G.run(tmp_path / "data", "ndjson", G.WINDOWED, executor="inline")
    got, letters, progress = G.run(
        tmp_path / "data",
        "ndjson",
        G.WINDOWED,
        executor="drizzle",
        workers=2,
        group_size=6,
        transport="ray",
        ray_address=ray_cluster.address,
    )
    G.same_batches(got, want)
    assert letters == want_letters and len(letters) == 1
    assert G.read_together(progress) > 1
