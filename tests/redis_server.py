"""A real `redis-server` for tests: a free loopback port, a temp dir, no persistence.

`redis_server` (a pytest fixture factory, see `make_fixture`) starts one per
test module and stops it afterwards. The tests using it are skipped only
when the redis-server binary is missing and the environment variable CI is
not set; in CI (where `.ci/run` installs it) a missing binary is a failure.
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

START_TIMEOUT_S = 30.0  # only to avoid hanging when the server cannot start


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RedisServer:
    """One running server; `stop()` and `start()` again (same port, empty) for outage tests."""

    port: int
    directory: str
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed (.ci/run installs it)"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} on port {self.port}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
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

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


def skip_unless_available() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI (.ci/run should install it)")
        pytest.skip("redis-server is not installed (set CI=1 to make this a failure)")


def start_server() -> RedisServer:
    skip_unless_available()
    directory = tempfile.mkdtemp(prefix="sd-redis-")
    last: Exception | None = None
    for _ in range(5):  # another process may take the free port before the server binds it
        try:
            return RedisServer(free_port(), directory).start()
        except RuntimeError as e:
            last = e
    raise RuntimeError(f"could not start redis-server: {last}")


def stop_server(server: RedisServer) -> None:
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)
