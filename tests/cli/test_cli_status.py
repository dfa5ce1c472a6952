"""`driftline status` and `driftline trace` against a real worker on the embedded stack."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
from click.testing import CliRunner

from driftline.cli import main
from driftline.contract import keys
from driftline.contract.records import Alert, dumps
from tests.harness import WorkerProcess, event, publish, read_until, settings_env

pytestmark = pytest.mark.integration

N = 60


def label(i: int, value: object = None) -> bytes:
    return json.dumps({"event_id": f"e{i}", "label": i % 2 == 0 if value is None else value, "ts": 1}).encode()


def invoke(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_status_and_trace_follow_events_labels_dead_letters_and_alerts(settings, tmp_path) -> None:
    worker = WorkerProcess(settings, tmp_path).start()
    client = redis.Redis.from_url(settings.redis_url)
    env = settings_env(settings)
    try:
        events = [(f"e{i}".encode(), event(i)) for i in range(N)]
        events.append((b"e-bad", event(999, loan="lots").replace(b'"e999"', b'"e-bad"')))
        asyncio.run(publish(settings, "events", events))
        asyncio.run(read_until(settings, ["predictions", "dead-letter"], lambda s: len(s["predictions"]) >= N))
        labels = [(b"default", label(i)) for i in range(10)] + [(b"default", label(5, [1]))]  # a nested label
        asyncio.run(publish(settings, "labels", labels))
        alert = Alert(
            alert_id="a1", kind="data_drift", severity="warning", model="default", model_version=1, feature="age",
            detector="ks", event_id="e7", ts=1_767_225_600_000, message="ks of age",
        )  # fmt: skip
        asyncio.run(publish(settings, "alerts", [(b"default", dumps(alert))]))
        deadline = time.monotonic() + 60
        while int(client.hget(keys.learner(settings.redis_prefix, "default"), "learned") or 0) < 10:
            assert time.monotonic() < deadline and worker.alive(), worker.log()
            time.sleep(0.1)

        code, out = invoke(env, "status", "--json")
        assert code == 0, out
        report = json.loads(out)
        assert report["broker"]["reachable"] and report["redis"]["reachable"]
        scoring = report["scoring"]
        assert scoring["group"] == f"{settings.topic_prefix}scoring" and len(scoring["members"]) == 1
        assert sum(r["end"] for r in scoring["partitions"]) == N + 1  # every event, the dead-lettered one too
        [model] = report["models"]
        assert (model["name"], model["served_version"], model["challenger_version"]) == ("default", 1, None)
        assert model["learner"]["learned"] == 10
        assert sum(r["position"] or 0 for r in model["learner"]["partitions"]) >= 10
        assert [a["alert_id"] for a in report["alerts"]] == ["a1"]
        code, out = invoke(env, "status")
        assert code == 0 and "scoring group" in out and "default" in out and "ks of age" in out

        code, out = invoke(env, "trace", "e3", "--json")
        assert code == 0, out
        traced = json.loads(out)
        [prediction] = traced["predictions"]
        assert prediction["model_version"] == 1 and set(prediction["probabilities"]) == {"False", "True"}
        assert traced["event"]["features"]["salary"] == 50_003.0
        assert traced["join_record"] is None, "deleted once its label was learned"
        assert [lb["status"] for lb in traced["labels"]] == ["learned"] and traced["learned"]

        waiting = json.loads(invoke(env, "trace", "e42", "--json")[1])  # scored, no label yet
        assert waiting["join_record"]["version"] == 1 and waiting["join_record"]["features"]["salary"] == 50_042.0
        assert waiting["join_record"]["prediction"] == waiting["predictions"][0]["prediction"]
        shallow = json.loads(invoke(env, "trace", "e42", "--depth", "1", "--json")[1])  # the newest record of each
        assert shallow["event"] is None and shallow["predictions"] == shallow["labels"] == []  # partition only
        assert shallow["join_record"] == waiting["join_record"]  # Redis is not a topic

        traced = json.loads(invoke(env, "trace", "e5", "--json")[1])
        statuses = sorted(lb["status"] for lb in traced["labels"])
        assert statuses[0].startswith("dead-lettered: validate") and statuses[1] == "learned"

        code, out = invoke(env, "trace", "e-bad")
        assert code == 0, out
        assert "dead-lettered from" in out and "FeatureError: feature 'loan' expects a number, got str" in out
        assert "prediction: none" in out

        assert "alert: " in invoke(env, "trace", "e7")[1]
        code, out = invoke(env, "trace", "e-never")
        assert code == 1 and "no trace of event 'e-never'" in out
    finally:
        worker.stop()
    assert "Traceback" not in worker.log()


def test_status_and_trace_without_a_reachable_stack_are_one_line_and_exit_2(settings) -> None:
    no_broker = settings_env(settings, DRIFTLINE_BROKER_URL="127.0.0.1:1")
    no_redis = settings_env(settings, DRIFTLINE_REDIS_URL="redis://127.0.0.1:1/0")
    for env, what in ((no_broker, "broker at 127.0.0.1:1 unreachable"), (no_redis, "Redis at redis://127.0.0.1:1")):
        for args in (["status"], ["trace", "e1"]):
            code, out = invoke(env, *args)
            assert code == 2 and what in out and len(out.strip().splitlines()) == 1, out
