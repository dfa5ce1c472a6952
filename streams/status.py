"""`driftline status`: is the stack up, who consumes what and how far behind, which versions are served.

:func:`collect_status` gathers, with a deadline on every call (:mod:`.inspection`):

* the broker (cluster id, brokers) and Redis, reachable or not;
* the scoring group: its members (and their partitions when the broker reports assignments) and, per partition of
  ``events``, the committed offset, the end and the lag;
* the learning group: its members and, per partition of ``labels``, the learners' position, which lives in their
  checkpoints in Redis (the learner commits there, exactly once, not to Kafka), the end and the lag;
* every registered model: served and challenger versions, latest version, task, decision threshold, labels learned
  and the learner's position;
* the last alerts on ``alerts``.
"""

from __future__ import annotations

from typing import Any

import redis
from aiokafka import TopicPartition

from driftline.contract import keys
from driftline.contract.records import Alert
from driftline.contract.settings import Settings
from driftline.contract.signing import IntegrityError
from driftline.contract.urls import masked
from driftline.models.learner import OnlineLearner
from driftline.models.registry import ModelRegistry
from driftline.streams.inspection import Broker, lag_rows, open_redis, total

#: Alerts shown by default.
LAST_ALERTS = 5


def learner_positions(
    client: redis.Redis, settings: Settings, name: str, labels_topic: str
) -> tuple[dict[str, Any], dict[int, int]]:
    """What the checkpoint of ``name``'s learner says: labels learned, base version, next offset per partition."""
    stored = client.hgetall(keys.learner(settings.redis_prefix, name))
    if not stored:
        return {"checkpoint": False, "learned": 0}, {}
    info: dict[str, Any] = {
        "checkpoint": True,
        "learned": int(stored.get(b"learned", 0)),
        "base_version": int(stored.get(b"base_version", 0)),
    }
    try:
        learner = OnlineLearner.restore(
            stored[b"checkpoint"], hmac_key=settings.keyring(), purpose=keys.learner_purpose(name)
        )
    except (IntegrityError, KeyError) as exc:
        info["error"] = f"checkpoint unreadable: {exc}"
        return info, {}
    positions = {p: offset + 1 for (topic, p), offset in learner.offsets.items() if topic == labels_topic}
    return info, positions


async def _alerts(broker: Broker, last: int) -> list[dict[str, Any]]:
    partitions = await broker.partitions("alerts")
    ends = await broker.end_offsets(partitions)
    records = await broker.read({tp: (max(0, end - last), end) for tp, end in ends.items()}, lambda r: True)
    alerts = []
    for record in records:
        try:
            alerts.append(Alert.model_validate_json(record.value or b"").model_dump())
        except ValueError:
            continue
    return sorted(alerts, key=lambda a: a["ts"])[-last:]


async def collect_status(settings: Settings, last_alerts: int = LAST_ALERTS) -> dict[str, Any]:
    """The status report (see the module docstring); :class:`StackUnreachable` when the broker or Redis is down."""
    client = open_redis(settings)
    registry = ModelRegistry(client, settings.keyring(), prefix=settings.redis_prefix)
    async with Broker(settings) as broker:
        cluster = await broker.call(broker.admin.describe_cluster(), "describe cluster")
        report: dict[str, Any] = {
            "broker": {
                "url": broker.url,
                "reachable": True,
                "cluster_id": cluster.get("cluster_id"),
                "brokers": [f"{b['host']}:{b['port']}" for b in cluster.get("brokers", [])],
            },
            "redis": {"url": masked(settings.redis_url), "reachable": True},
        }
        events = await broker.partitions("events")
        labels = await broker.partitions("labels")
        event_ends = await broker.end_offsets(events)
        label_ends = await broker.end_offsets(labels)

        scoring = f"{settings.topic_prefix}scoring"
        state, members = await broker.members(scoring)
        committed = await broker.committed(scoring, events)
        rows = lag_rows(event_ends, committed)
        report["scoring"] = {
            "group": scoring,
            "topic": settings.topic("events"),
            "state": state,
            "members": members,
            "partitions": rows,
            "lag": total(r["lag"] for r in rows),
        }

        models = []
        learned_from: dict[int, list[int]] = {}
        for name in sorted(registry.names()):
            latest = registry.versions(name)
            learner, positions = learner_positions(client, settings, name, settings.topic("labels"))
            for partition, offset in positions.items():
                learned_from.setdefault(partition, []).append(offset)
            if positions:
                learner_rows = lag_rows(
                    {tp: end for tp, end in label_ends.items() if tp.partition in positions},
                    {TopicPartition(settings.topic("labels"), p): o for p, o in positions.items()},
                )
                learner["partitions"] = learner_rows
            threshold = client.get(keys.threshold(settings.redis_prefix, name))
            models.append(
                {
                    "name": name,
                    "served_version": registry.current_version(name),
                    "challenger_version": registry.challenger_version(name),
                    "latest_version": latest[-1].version if latest else None,
                    "task": latest[-1].task if latest else None,
                    "threshold": float(threshold) if threshold is not None else None,
                    "learner": learner,
                }
            )
        report["models"] = models

        learning = f"{settings.topic_prefix}learning"
        state, members = await broker.members(learning)
        # the learner resumes a partition from the earliest checkpointed offset on it
        rows = lag_rows(
            label_ends,
            {tp: min(learned_from[tp.partition], default=None) for tp in labels if tp.partition in learned_from},
        )
        report["learning"] = {
            "group": learning,
            "topic": settings.topic("labels"),
            "state": state,
            "members": members,
            "partitions": rows,
            "lag": total(r["lag"] for r in rows),
        }
        report["alerts"] = await _alerts(broker, last_alerts)
    return report
