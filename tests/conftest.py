"""Shared fixtures: the corpus catalog (built through DDL) and the `--update-goldens` option."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from multiprocess import util as multiprocess_util

import budget  # noqa: F401  (registers and loads the hypothesis profiles)
import page_cache
import stream_dsl as sd
from ray_cluster import ray_cluster, stop_shared_cluster  # noqa: F401  (the two-node Ray cluster of a test module)

# The catalog every corpus statement is bound against. It is created with DDL
# (not by filling the catalog by hand) so the DDL path runs in every test.
CATALOG_DDL: tuple[str, ...] = (
    """
    CREATE STREAM events (
      user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
      event_type STRING, event_time TIMESTAMP, ip_address STRING,
      WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
    ) WITH (connector = 'generator', kind = 'ysb', rate = '1000000', count = '5000000')
    """,
    """
    CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
      WITH (connector = 'files', path = 'data/campaigns.csv', format = 'csv')
    """,
    """
    CREATE STREAM clicks (
      user_id STRING, url STRING, ts TIMESTAMP, duration_ms BIGINT,
      WATERMARK FOR ts AS ts - INTERVAL '5' SECOND
    ) WITH (connector = 'files', path = 'data/clicks/', format = 'ndjson')
    """,
    """
    CREATE STREAM sensors (sensor_id INT, temperature DOUBLE, humidity DOUBLE, ok BOOLEAN, ts TIMESTAMP)
      WITH (connector = 'files', path = 'data/sensors/', format = 'ndjson')
    """,
    """
    CREATE TABLE users (user_id STRING, country STRING, age INT)
      WITH (connector = 'files', path = 'data/users.csv', format = 'csv')
    """,
    """
    CREATE STREAM transactions (tx_id BIGINT, account STRING, amount DOUBLE, merchant STRING, ts TIMESTAMP)
      WITH (connector = 'files', path = 'data/transactions/', format = 'ndjson')
    """,
    """
    CREATE SINK out WITH (connector = 'files', path = 'out/', format = 'parquet')
    """,
)


def _private_temp_dir() -> str:
    """A temp dir of this test run's own, for it and every process it starts (TMPDIR is inherited).

    The machine's /tmp is shared with other runs, so a leak check that
    compares the `pymp-*` dirs before and after could blame this run for
    another's. Removed at exit after multiprocess removes its own temp dir
    (its finalizer has exit priority -100, this one -101).
    """
    # Beside, never inside, the controller's dir under xdist (its TMPDIR is inherited): Ray's socket paths
    # under the temp dir must stay within AF_UNIX's 107 bytes.
    base = os.environ.setdefault("STREAM_DSL_TESTS_BASE_TMPDIR", tempfile.gettempdir())
    path = tempfile.mkdtemp(prefix="stream-dsl-tests-", dir=base)
    os.environ["TMPDIR"] = path
    tempfile.tempdir = path
    multiprocess_util.Finalize(None, shutil.rmtree, args=(path,), kwargs={"ignore_errors": True}, exitpriority=-101)
    return path


SESSION_TEMP_DIR = _private_temp_dir()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite golden files (tests/corpus/valid/*.plan, tests/plans/*.explain) from the current output",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture
def ctx() -> sd.Context:
    """A fresh inline context holding the corpus catalog, one DDL statement at a time."""
    context = sd.Context(executor="inline", workers=1, check_files=False)  # its files exist nowhere: planning only
    for statement in CATALOG_DDL:
        assert context.sql(statement) is None
    return context


@pytest.fixture(scope="session", autouse=True)
def fsync_in_the_page_cache():
    """fsync checks the descriptor but skips the flush, in this process and in the driver scripts tests start
    (tests/page_cache.py says why; STREAM_DSL_TESTS_FSYNC=1 keeps real fsyncs)."""
    page_cache.skip_flush()
    os.environ[page_cache.SKIP_FLUSH_ENV] = "1"
    try:
        yield
    finally:
        page_cache.restore()
        os.environ.pop(page_cache.SKIP_FLUSH_ENV, None)


@pytest.fixture(scope="session")
def warm_workers():
    """One WorkerPool per test process for the differential properties on worker processes (`collect(...,
    pool=lambda: warm_workers)`), as a Context keeps one for its queries: each run after the first of a worker count
    takes warm workers instead of starting processes. Cold starts and leak checks stay with the tests of them
    (test_multiproc, test_worker_pool); idle workers exit by themselves after the pool's WARM_EXIT_S."""
    from executor.multiproc.pool import WorkerPool

    pool = WorkerPool()
    yield pool
    pool.close()


# ---------------------------------------------------------------- markers

# What a test needs or costs, by module (a module's tests share their setup) and by executor parameter, so that
# `pytest -m "not slow"` is the inner loop and `-m "not redis"` runs without a Redis server.
SLOW_MODULES = {
    "test_recovery",
    "test_interrupts",
    "test_bench",
    "test_repl",
    "test_cli",
    "test_redis",
    "test_transport_conformance",
    "test_checkpoint_restart",
    "test_multiproc",
    "test_differential",
    "test_socket",
    "test_dead_letters",
    "test_file_safety",
    "test_aggregation_pushdown",
    "test_kafka",
    "test_kafka_recovery",
    "test_kafka_splits",
    "test_upsert_kafka",
    "test_socket_limits",
    "test_differential_random",
    "test_overload",
    "test_ray",
    "test_ray_transport",
    "test_checkpoint_store",
    "test_redis_trims",
    "test_redis_splits",
    "test_secrets",
}
REDIS_MODULES = {"test_redis", "test_redis_splits", "test_dead_letters", "test_socket", "test_upsert_sinks"}
MULTIPROCESS_MODULES = {
    "test_multiproc",
    "test_recovery",
    "test_interrupts",
    "test_transport_conformance",
    "test_runtime",
    "test_checkpoint_restart",
}
MULTIPROCESS_EXECUTORS = {"drizzle", "bsp"}
# Not slow by the marker (one process, no services) but with hypothesis properties of 10-50 s under CI's budget.
LONG_PROPERTY_MODULES = {
    "test_unparse",
    "test_state_small",
    "test_rules_properties",
    "test_changelog_rows",
    "test_windows",
    "test_kernels",
    "test_parser_fuzz",
    "test_functions_duckdb",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group markers added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__ if item.module is not None else ""
        params = getattr(getattr(item, "callspec", None), "params", {})
        multiprocess = module in MULTIPROCESS_MODULES or params.get("executor") in MULTIPROCESS_EXECUTORS
        if multiprocess:
            item.add_marker(pytest.mark.multiprocess)
        if module in SLOW_MODULES or multiprocess:
            item.add_marker(pytest.mark.slow)
        if module in REDIS_MODULES and "server" in getattr(item, "fixturenames", ()) or module == "test_redis":
            item.add_marker(pytest.mark.redis)
        if _needs_ray(item):
            # One Ray cluster per test process: under xdist (`--dist loadgroup`) every test that uses it runs on
            # the same worker, one after another, rather than a cluster per worker on the same two addresses. A
            # test marked `ray` may ask for the cluster at run time (the transport conformance suite's ray param).
            item.add_marker(pytest.mark.xdist_group("ray"))

    # Longest first (xdist hands out tests in this order, the 'ray' group first as the largest unit): a long test
    # started last would run alone at the end while the other test processes sit idle.
    items.sort(key=lambda item: 0 if item.get_closest_marker("slow") or _module(item) in LONG_PROPERTY_MODULES else 1)


def _module(item: pytest.Item) -> str:
    return item.module.__name__ if item.module is not None else ""


def _needs_ray(item: pytest.Item) -> bool:
    """A test of the xdist 'ray' group: it uses the Ray cluster, or is marked `ray` (it may ask for it at run time)."""
    return "ray_cluster" in getattr(item, "fixturenames", ()) or item.get_closest_marker("ray") is not None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """After the last Ray test in a row (its module's driver disconnected), stop the cluster the Ray modules
    shared: the tests after it run without Ray's processes on the machine, as when each module had its own."""
    try:
        return (yield)
    finally:
        if nextitem is None or not _needs_ray(nextitem):
            stop_shared_cluster()


def pytest_sessionfinish(session: pytest.Session) -> None:
    stop_shared_cluster()  # a run interrupted within the Ray tests


@pytest.fixture(autouse=True)
def udfs_stay_in_their_test():
    """A UDF a test registers is gone after it: function names are global to the process (ir/udfs.py), and one
    left behind changes what SHOW FUNCTIONS lists to a later test in the same xdist worker."""
    from stream_dsl.ir import udfs

    before = set(udfs.names())
    yield
    for name in set(udfs.names()) - before:
        udfs.unregister(name)
