"""Misconfiguration is one line naming the setting and the fix, exit status 2, no traceback, nothing left open:
real ``driftline`` processes, with a broker or Redis URL that is wrong, unreachable or not Kafka."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from driftline.embedded.stack import REDIS_USER, free_port, start_redis

HMAC = {"DRIFTLINE_MODEL_HMAC_KEY": "k", "DRIFTLINE_METRICS_PORT": "0", "DRIFTLINE_HTTP_PORT": "0"}


def driftline(*args: str, tmp_path=None, **env: str) -> subprocess.CompletedProcess:
    """``driftline ARGS`` with only these DRIFTLINE_* settings; a minute at most (a hang fails the test)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    return subprocess.run(
        [sys.executable, "-m", "driftline", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def assert_one_line(result: subprocess.CompletedProcess, *expected: str) -> str:
    """Exit 2, no output but one ``Error:`` line on stderr that contains each of ``expected``."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout and "Unclosed" not in result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def events_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_id": "a", "ts": 1, "features": {}}\n')
    return str(path)


def commands(events_file: str) -> list[list[str]]:
    """A command of every group that talks to the broker or Redis."""
    return [
        ["worker"],
        ["produce", events_file],
        ["alerts", "tail"],
        ["dlq", "inspect"],
        ["models", "list"],
        ["report", "--json"],
    ]


@pytest.mark.parametrize(
    ("variable", "args"),
    [
        ("DRIFTLINE_BROKER_URL", ["produce", "{events}"]),
        ("DRIFTLINE_BROKER_URL", ["alerts", "tail"]),
        ("DRIFTLINE_BROKER_URL", ["dlq", "inspect"]),
        ("DRIFTLINE_REDIS_URL", ["models", "list"]),
        ("DRIFTLINE_REDIS_URL", ["report", "--json"]),
        ("DRIFTLINE_REDIS_URL", ["score", "--data", "{events}", "--out", "{events}.parquet"]),
        ("DRIFTLINE_REDIS_URL", ["offline", "register", "{tmp}"]),
    ],
)
def test_an_unset_url_a_command_needs_is_one_line_naming_it(variable, args, events_file, tmp_path) -> None:
    """Every command that needs the broker or Redis and finds its URL unset: exit 2, one line naming the variable,
    why the command needs it and how to get one (the same words whichever command it is)."""
    other = {"DRIFTLINE_REDIS_URL": "redis://127.0.0.1:1/0"} if variable == "DRIFTLINE_BROKER_URL" else {}
    argv = [a.format(events=events_file, tmp=tmp_path) for a in args]
    line = assert_one_line(driftline(*argv, **HMAC, **other), f"{variable} is not set (")
    assert line.endswith("; start `driftline up` and export what it prints, or point it at yours"), line


def test_settings_json_that_does_not_parse_is_one_line_naming_the_variable(events_file) -> None:
    for args in commands(events_file):
        result = driftline(*args, DRIFTLINE_ALERT_ACTIONS="{rollback", **HMAC)
        assert_one_line(result, "DRIFTLINE_ALERT_ACTIONS is not valid JSON", "set it to a JSON object")


def test_a_broker_url_with_a_scheme_is_refused_before_anything_connects(events_file) -> None:
    env = {"DRIFTLINE_BROKER_URL": "http://localhost:9092/", "DRIFTLINE_REDIS_URL": "redis://127.0.0.1:1/0", **HMAC}
    for args in commands(events_file):
        assert_one_line(driftline(*args, **env), "DRIFTLINE_BROKER_URL", "no scheme", "e.g. localhost:9092")
    env = {"DRIFTLINE_BROKER_URL": "127.0.0.1:9092", "DRIFTLINE_REDIS_URL": "localhost:6379", **HMAC}
    assert_one_line(driftline("models", "list", **env), "DRIFTLINE_REDIS_URL", "e.g. redis://localhost:6379/0")


def test_a_broker_where_nothing_listens_is_one_line_naming_it(events_file) -> None:
    address = f"127.0.0.1:{free_port()}"
    for args in [["produce", events_file], ["alerts", "tail"], ["dlq", "inspect"]]:
        line = assert_one_line(driftline(*args, DRIFTLINE_BROKER_URL=address, **HMAC), address)
        assert line.endswith("check DRIFTLINE_BROKER_URL"), line


def test_redis_where_nothing_listens_is_one_line_naming_it() -> None:
    env = {"DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", **HMAC}
    assert_one_line(driftline("models", "list", **env), "ConnectionError", "check DRIFTLINE_REDIS_URL")


@pytest.mark.integration
def test_a_worker_with_redis_up_but_no_broker_says_so_in_one_line(stack) -> None:
    env = {"DRIFTLINE_BROKER_URL": f"127.0.0.1:{free_port()}", "DRIFTLINE_REDIS_URL": stack.redis_url, **HMAC}
    assert_one_line(driftline("worker", **env), "no Kafka broker answered", "check DRIFTLINE_BROKER_URL")


@pytest.mark.integration
def test_a_port_that_does_not_speak_kafka_is_one_line_after_a_bounded_wait(stack, events_file) -> None:
    """The broker URL points at redis-server: it accepts the connection but never answers as Kafka."""
    not_kafka = f"127.0.0.1:{stack.redis.port}"
    env = {"DRIFTLINE_BROKER_URL": not_kafka, "DRIFTLINE_REDIS_URL": stack.redis_url, **HMAC}
    for args in [["worker"], ["alerts", "tail"], ["produce", events_file]]:
        assert_one_line(driftline(*args, **env), f"no Kafka broker answered at {not_kafka} within 10 s")


@pytest.mark.integration
def test_without_a_key_commands_that_read_signed_state_refuse_and_a_producer_needs_none(stack, events_file) -> None:
    """No public key (issue 14): with a broker and Redis but no DRIFTLINE_MODEL_HMAC_KEY, every command that
    reads or writes signed state says so in one line; `produce`, which only publishes, works without it."""
    env = {"DRIFTLINE_BROKER_URL": stack.broker_url, "DRIFTLINE_REDIS_URL": stack.redis_url}
    for args in (
        ["worker"],
        ["models", "list"],
        ["report", "--json"],
        ["status"],
        ["score", "--data", events_file, "--out", events_file + ".parquet"],
    ):
        assert_one_line(driftline(*args, **env), "DRIFTLINE_MODEL_HMAC_KEY is not set: start `driftline up`")
    published = driftline("produce", events_file, **env)
    assert published.returncode == 0 and "published 1 messages" in published.stdout, published.stderr


@pytest.mark.integration
def test_a_redis_user_whose_acl_refuses_the_prefix_is_one_line_naming_the_topic_prefix(stack, tmp_path) -> None:
    """Redis allows its user ``driftline:*`` only (as ``driftline up`` and the compose ACL do) and the deployment
    moved to DRIFTLINE_TOPIC_PREFIX=shop. (keys ``shop:*``): NOPERM is one line naming both, not a traceback."""
    redis = start_redis(tmp_path, "pw", key_prefix="driftline:")
    try:
        env = {
            "DRIFTLINE_BROKER_URL": stack.broker_url,
            "DRIFTLINE_REDIS_URL": f"redis://{REDIS_USER}:pw@127.0.0.1:{redis.port}/0",
            "DRIFTLINE_TOPIC_PREFIX": "shop.",
            **HMAC,
        }
        for args in (["worker"], ["status"], ["trace", "e1"], ["models", "list"], ["report", "--json"]):
            assert_one_line(driftline(*args, **env), "NoPermissionError", "allowed the keys shop:*", "TOPIC_PREFIX")
    finally:
        redis.stop()


# A child that polls StopSignals.wait as fast as it can until 2,000 signals were handled, then ignores the signal
# and prints how many it got. The Event-based wait `driftline up` had deadlocked (or overflowed its stack in nested
# handlers) within a few hundred signals here.
_SIGNAL_STORM = """
import signal, sys
from driftline.cli_support import StopSignals
stop = StopSignals(signal.SIGUSR1)
print("ready", flush=True)
while len(stop.received) < 2000:
    stop.wait(0.00005)
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
print(len(stop.received), flush=True)
"""


def test_stop_signals_never_deadlock_whenever_the_signal_lands() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _SIGNAL_STORM], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    sent = 0
    try:
        while proc.poll() is None and sent < 200_000:  # a deadlocked child never exits: bounded by the count
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGUSR1)
            sent += 1
            time.sleep(0.0001)  # paces the storm; nothing waits on it
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"the polling loop hung or died after {sent} signals (exit {proc.returncode})"
    assert int(proc.stdout.read()) >= 2000
