"""Run a `stream-dsl bench ...` command against a two-node loopback Ray cluster started for it.

    python tests/ray_bench.py scheduling --transport ray
    python tests/ray_bench.py ysb --transport ray --scaling --scaling-workers 1,2,3

The cluster is the tests' (tests/ray_cluster.py: 127.0.0.2 and 127.0.0.3,
no dashboard) and is stopped through its handle afterwards; the command
gets `--ray-address` of it and runs in a child process from this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ray.cluster_utils import Cluster

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ray_cluster import HEAD_IP, SECOND_IP, _free_port, _node_args  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str]) -> int:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args=dict(_node_args(HEAD_IP), gcs_server_port=_free_port(HEAD_IP)),
    )
    try:
        cluster.add_node(**_node_args(SECOND_IP))
        cluster.wait_for_nodes()
        env = dict(os.environ, PYTHONPATH=ROOT)
        command = [sys.executable, "-m", "stream_dsl", "bench", *argv, "--ray-address", cluster.address]
        return subprocess.run(command, cwd=ROOT, env=env).returncode
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
