"""`driftline worker` with an unreachable Redis says so in one line and exits non-zero (no traceback)."""

from __future__ import annotations

import importlib.util

from click.testing import CliRunner

from driftline.cli import main


def test_worker_with_unreachable_redis_prints_one_line_error_and_exits_non_zero():
    env = {
        "DRIFTLINE_BROKER_URL": "127.0.0.1:1",
        "DRIFTLINE_REDIS_URL": "redis://127.0.0.1:1/0",
        "DRIFTLINE_MODEL_HMAC_KEY": "k",
        "DRIFTLINE_METRICS_PORT": "0",
    }
    result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: Redis unreachable at redis://127.0.0.1:1/0")


def test_worker_with_only_one_of_broker_and_redis_refuses_to_start():
    result = CliRunner().invoke(
        main, ["worker"], env={"DRIFTLINE_BROKER_URL": "127.0.0.1:1", "DRIFTLINE_MODEL_HMAC_KEY": "k"}
    )
    assert result.exit_code == 2 and "set both DRIFTLINE_BROKER_URL and DRIFTLINE_REDIS_URL" in result.output


def test_worker_with_the_confluent_client_not_installed_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "confluent_kafka" else real(name, *a)
    )
    result = CliRunner().invoke(
        main, ["worker"], env={"DRIFTLINE_KAFKA_CLIENT": "confluent", "DRIFTLINE_MODEL_HMAC_KEY": "k"}
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: DRIFTLINE_KAFKA_CLIENT=confluent needs confluent-kafka: pip install confluent-kafka"
    ]


def test_worker_error_lines_never_print_the_redis_password():
    env = {
        "DRIFTLINE_BROKER_URL": "127.0.0.1:1",
        "DRIFTLINE_REDIS_URL": "redis://driftline:s3cret-pass@127.0.0.1:1/0",
        "DRIFTLINE_MODEL_HMAC_KEY": "k",
        "DRIFTLINE_METRICS_PORT": "0",
    }
    result = CliRunner().invoke(main, ["worker"], env=env)
    assert result.exit_code == 2 and "s3cret-pass" not in result.output
    assert "Redis unreachable at redis://driftline:***@127.0.0.1:1/0" in result.output
