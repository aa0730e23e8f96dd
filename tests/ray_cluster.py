"""A real two-node Ray cluster on this machine, for the Ray transport's tests (`ray_cluster` fixture).

The head node listens on 127.0.0.2 and a second node on 127.0.0.3, never
on 127.0.0.1 (Ray silently replaces that with the machine's external
address), on a free GCS port, without a dashboard, each with a 200 MiB
object store. The cluster is stopped through its own handle
(`Cluster.shutdown`), never with `ray stop`, which would end every Ray
process on the machine. Without the ray package the tests skip, except
in CI (env CI set), where they fail.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

HEAD_IP = "127.0.0.2"
SECOND_IP = "127.0.0.3"
OBJECT_STORE_BYTES = 200 << 20
NODE_CPUS = 4  # logical: 3 workers of 1 CPU fit on either node alone (after the other is removed)


@dataclass
class RayCluster:
    cluster: Any  # ray.cluster_utils.Cluster
    second: Any  # the second node's handle (None once removed)

    @property
    def address(self) -> str:
        return self.cluster.address

    def node_ids(self) -> dict[str, str]:
        """Ray node id -> its IP, of the nodes alive now."""
        import ray

        return {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}

    def ensure_second_node(self) -> None:
        """Add the second node back (after a test removed it)."""
        if self.second is None:
            self.second = self.cluster.add_node(**_node_args(SECOND_IP))
            self.cluster.wait_for_nodes()


# Ports a Ray node takes by default (dashboard, dashboard agent HTTP, client server, GCS): a random free port
# equal to one of them makes Ray refuse the node's configuration ("used by other components").
RAY_DEFAULT_PORTS = frozenset({8265, 52365, 10001, 6379})


def _free_port(host: str) -> int:
    """A free port on `host` that none of the node's own default ports is."""
    while True:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in RAY_DEFAULT_PORTS:
            return port


def _node_args(ip: str) -> dict[str, Any]:
    return {
        "node_ip_address": ip,
        "num_cpus": NODE_CPUS,
        "object_store_memory": OBJECT_STORE_BYTES,
        "include_dashboard": False,
    }


def ray_or_skip() -> Any:
    """The ray module; without it skip (outside CI) or fail (in CI)."""
    try:
        import ray
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the ray package is not installed: CI installs stream-dsl[test], which includes it")
        pytest.skip("the ray package is not installed (pip install 'stream-dsl[ray]')")
    return ray


_SHARED: list[RayCluster] = []  # the cluster this test process's Ray tests share (at most one, started lazily)


def shared_cluster() -> RayCluster:
    """The two-node cluster, started by the first Ray test of this process and kept for the Ray tests after it.

    One cluster for every Ray module (test_ray, the transport conformance suite's ray param): starting one
    costs a GCS, two raylets and their workers (~15-25 s of the suite on 2 cores). conftest's
    `pytest_runtest_teardown` stops it (`stop_shared_cluster`) as soon as the next test is no Ray test: the
    xdist 'ray' group runs them one after another on one process.
    """
    if not _SHARED:
        from ray.cluster_utils import Cluster

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no traffic beyond loopback
        head = dict(_node_args(HEAD_IP), gcs_server_port=_free_port(HEAD_IP))
        cluster = Cluster(initialize_head=True, connect=False, head_node_args=head)
        try:
            second = cluster.add_node(**_node_args(SECOND_IP))
            cluster.wait_for_nodes()
        except BaseException:
            cluster.shutdown()
            raise
        _SHARED.append(RayCluster(cluster, second))
    return _SHARED[0]


def stop_shared_cluster() -> None:
    """Stop the shared cluster (if one runs) through its own handle."""
    while _SHARED:
        _SHARED.pop().cluster.shutdown()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    """The two-node cluster, with this process connected to it as the driver (on the head node's address).

    The driver connects per module, not per session: a process still connected to Ray as a driver made a
    later test of the same process (the REPL's Ctrl-C test, under xdist) miss its first batch or hang, so the
    Ray modules disconnect. The cluster itself is shared (`shared_cluster`).
    """
    ray = ray_or_skip()
    from executor.multiproc.ray_transport import connect

    cluster = shared_cluster()
    try:
        connect(cluster.address, node_ip_address=HEAD_IP)
        yield cluster
    finally:
        from executor.multiproc.ray_transport import drop_warm_actors

        drop_warm_actors()  # they belong to this module's job
        ray.shutdown()
