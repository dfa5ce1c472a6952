"""`driftline alerts tail` and alert dedup against the real embedded broker and redis-server."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
from aiokafka import AIOKafkaProducer
from click.testing import CliRunner

from driftline.cli import main
from driftline.contract.records import Alert, dumps
from driftline.contract.settings import Settings
from driftline.contract.signing import ALERT_SIGNATURE_HEADER, Keyring, alert_keyring, sign_alert
from driftline.streams.alerts_io import tail_alerts
from driftline.streams.connections import kafka_kwargs
from driftline.streams.redis_dedup import HOUSEKEEPING_MS, RedisDeduplicator

pytestmark = pytest.mark.integration


def alert(i: int) -> Alert:
    return Alert(
        alert_id=f"a{i}",
        kind="data_drift",
        severity="warning",
        model="fraud",
        model_version=2,
        feature="amount",
        detector="ks",
        statistic=0.3,
        threshold=0.13,
        window=500,
        event_id=f"e{i}",
        ts=1_767_225_600_000 + i,
        message=f"ks of amount is 0.3 ({i})",
        action="none",
    )


async def publish(settings: Settings, records: list[bytes], signatures: list[str | None] | None = None) -> None:
    assert settings.broker_url is not None
    producer = AIOKafkaProducer(**kafka_kwargs(settings, settings.broker_url))
    await producer.start()
    try:
        for record, signature in zip(records, signatures or [None] * len(records), strict=True):
            headers = [(ALERT_SIGNATURE_HEADER, signature.encode())] if signature else None
            await producer.send_and_wait(settings.topic("alerts"), record, headers=headers)
    finally:
        await producer.stop()


def env(settings: Settings) -> dict[str, str]:
    assert settings.broker_url is not None and settings.redis_url is not None
    return {
        "DRIFTLINE_BROKER_URL": settings.broker_url,
        "DRIFTLINE_REDIS_URL": settings.redis_url,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_MODEL_HMAC_KEY": "test",
    }


def test_tail_json_from_beginning_prints_each_published_alert_record_and_skips_foreign_messages(
    settings: Settings,
) -> None:
    asyncio.run(publish(settings, [dumps(alert(1)), b"not an alert", dumps(alert(2)), dumps(alert(3))]))
    result = CliRunner().invoke(
        main, ["alerts", "tail", "--json", "--from-beginning", "--timeout", "3"], env=env(settings)
    )  # stops after 3 s without a new alert
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    shown = [Alert.model_validate(json.loads(line)) for line in lines]  # partitions: no order across them
    assert sorted(shown, key=lambda a: a.alert_id) == [alert(1), alert(2), alert(3)]
    assert "skipped a message that is not an alert" in result.stderr


def test_tail_verify_shows_only_alerts_signed_by_the_workers_keys(settings: Settings) -> None:
    """Issue 14: anyone who can write to the alerts topic could publish a forged alert, and `alerts tail` showed
    it. With --verify only the alert signed with the deployment's alert key is shown; one without a signature
    and one signed with another key are skipped, each with a line on stderr."""
    keys_here = alert_keyring(Keyring(b"test"))
    good, unsigned, foreign = dumps(alert(21)), dumps(alert(22)), dumps(alert(23))
    signatures = [
        sign_alert(keys_here, good),
        None,
        sign_alert(alert_keyring(Keyring(b"attacker")), foreign),
    ]
    asyncio.run(publish(settings, [good, unsigned, foreign], signatures))
    args = ["alerts", "tail", "--verify", "--json", "--from-beginning", "--timeout", "3"]
    result = CliRunner().invoke(main, args, env=env(settings))
    assert result.exit_code == 0, result.output
    shown = [Alert.model_validate_json(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert shown == [alert(21)]
    assert result.stderr.count("skipped an alert that is not signed by the workers") == 2
    unverified = CliRunner().invoke(main, args[:2] + args[3:], env=env(settings))
    assert len([line for line in unverified.stdout.splitlines() if line.startswith("{")]) == 3, "before: all shown"


def test_tail_summary_lines_say_kind_feature_detector_severity_and_event(settings: Settings) -> None:
    asyncio.run(publish(settings, [dumps(alert(7))]))
    result = CliRunner().invoke(
        main, ["alerts", "tail", "--from-beginning", "--max", "1", "--timeout", "30"], env=env(settings)
    )
    assert result.exit_code == 0, result.output
    assert "WARNING data_drift fraud v2 amount ks=0.3 (threshold 0.13) at event e7" in result.stdout


def test_tail_filters_by_kind_model_and_severity_and_max_counts_the_alerts_shown(settings: Settings) -> None:
    base = alert(0)
    mixed = [
        base.model_copy(update={"alert_id": "drift-fraud-warning"}),
        base.model_copy(update={"alert_id": "drift-fraud-critical", "severity": "critical"}),
        base.model_copy(update={"alert_id": "drift-churn-critical", "model": "churn", "severity": "critical"}),
        base.model_copy(update={"alert_id": "concept-fraud-critical", "kind": "concept_drift", "severity": "critical"}),
        base.model_copy(update={"alert_id": "quality-fraud-info", "kind": "data_quality", "severity": "info"}),
    ]
    asyncio.run(publish(settings, [dumps(a) for a in mixed]))

    def shown(*options: str) -> list[str]:
        args = ["alerts", "tail", "--json", "--from-beginning", "--timeout", "3", *options]
        result = CliRunner().invoke(main, args, env=env(settings))
        assert result.exit_code == 0, result.output
        return sorted(json.loads(line)["alert_id"] for line in result.stdout.splitlines() if line.startswith("{"))

    assert shown("--kind", "data_drift", "--model", "fraud") == ["drift-fraud-critical", "drift-fraud-warning"]
    assert shown("--severity", "critical", "--kind", "data_drift", "--kind", "concept_drift") == [
        "concept-fraud-critical",
        "drift-churn-critical",
        "drift-fraud-critical",
    ]
    assert shown("--model", "churn") == ["drift-churn-critical"]
    assert shown("--severity", "warning", "--model", "fraud", "--max", "3") == [
        "concept-fraud-critical",
        "drift-fraud-critical",
        "drift-fraud-warning",
    ]
    bad = CliRunner().invoke(main, ["alerts", "tail", "--kind", "drift"], env=env(settings))
    assert bad.exit_code == 2 and "Invalid value for '--kind'" in bad.output


def test_tail_from_the_end_sees_alerts_published_after_it_started_and_stops_on_timeout(settings: Settings) -> None:
    assert settings.broker_url is not None
    asyncio.run(publish(settings, [dumps(alert(0))]))  # older: not shown without --from-beginning
    seen: list[Alert] = []

    async def scenario() -> int:
        ready = asyncio.Event()
        task = asyncio.create_task(
            tail_alerts(
                settings.topic("alerts"),
                kafka_kwargs(settings, settings.broker_url),
                seen.append,
                timeout=5.0,
                on_ready=ready.set,
            )
        )
        await asyncio.wait_for(ready.wait(), 30)
        await publish(settings, [dumps(alert(11)), dumps(alert(12))])
        return await asyncio.wait_for(task, 60)

    assert asyncio.run(scenario()) == 2
    assert sorted(a.alert_id for a in seen) == ["a11", "a12"]


def test_redis_dedup_lets_one_of_two_workers_publish_the_same_alert_within_the_cooldown(
    redis_client: redis.Redis, settings: Settings
) -> None:
    assert settings.redis_url is not None
    workers = [RedisDeduplicator(redis.Redis.from_url(settings.redis_url)) for _ in range(2)]
    key = "fraud:data_drift:amount:ks"
    assert [w.first(key, ttl_ms=60_000, now_ms=0) for w in workers] == [True, False]
    assert workers[1].first(key, 60_000, now_ms=-59_999) is False  # a worker behind in event time
    assert workers[1].first(key, 60_000, now_ms=60_000) is True  # a cooldown of event time later
    assert 60_000 < redis_client.pttl("driftline:alert-dedup:" + key) <= 60_000 + HOUSEKEEPING_MS
    assert workers[0].first("fraud:data_drift:age:ks", 60_000, 0) is True
    assert all(w.fallbacks == 0 for w in workers)
