"""`driftline trace EVENT_ID`: follow one event from its message to its prediction, join record, label and learning.

What :func:`trace_event` reads (the topics are scanned on the partitions the event's keys hash to; the dead-letter
topic, which is small, whole):

* ``events``: the event itself (partition, offset, time, features) and whether the scoring group is past it;
* ``predictions``: each prediction published for it (version, prediction, probabilities, score), from Kafka or HTTP;
* Redis: its join record (what the learner will learn from, until the label TTL);
* ``labels``: its labels, each learned (before the learner's checkpointed position), dead-lettered (why) or not yet;
* ``dead-letter``: the event's or its labels' dead letters with stage, error class and reason;
* ``alerts``: alerts whose triggering event it is.

Only the last ``depth`` records of each partition are read (an old event of a busy topic is out of reach).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import ConsumerRecord, TopicPartition

from driftline.contract.records import Alert
from driftline.contract.settings import Settings
from driftline.streams.dlq import DeadLetterInfo
from driftline.streams.inspection import Broker, open_redis
from driftline.streams.join_store import find_join
from driftline.streams.status import learner_positions


def _json(value: bytes | None) -> Any:
    try:
        return orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None


def _event_id_of(value: bytes | None) -> str | None:
    parsed = _json(value)
    return parsed.get("event_id") if isinstance(parsed, dict) else None


def dead_letter_row(record: ConsumerRecord) -> dict[str, Any]:
    """A dead letter's where-from and why, from its headers (read leniently, as ``driftline dlq`` reads them)."""
    letter = DeadLetterInfo.from_headers(record.headers)
    return {
        "partition": record.partition,
        "offset": record.offset,
        "source_topic": letter.source_topic,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "stage": letter.stage,
        "error_class": letter.error_class,
        "reason": letter.error_message,
    }


#: Records read at most from the end of each partition scanned.
DEFAULT_DEPTH = 1_000_000


async def trace_event(
    settings: Settings, event_id: str, model: str | None = None, depth: int = DEFAULT_DEPTH
) -> dict[str, Any]:
    """Everything the stack knows of ``event_id`` (see the module docstring) in the last ``depth`` records of each
    partition read; ``found`` is False when nothing."""
    client = open_redis(settings)
    key = event_id.encode()

    async def _scan(broker: Broker, topic: str, key: bytes | None, keep: Any) -> list[ConsumerRecord]:
        """Records of ``topic`` that ``keep`` accepts, on the partition of ``key`` (every partition: None)."""
        partitions = await broker.partition_of(topic, key) if key is not None else await broker.partitions(topic)
        ends = await broker.end_offsets(partitions)
        return await broker.read({tp: (max(0, end - depth), end) for tp, end in ends.items()}, keep)

    async with Broker(settings) as broker:
        events = await _scan(broker, "events", key, lambda r: r.key == key or _event_id_of(r.value) == event_id)
        event = None
        if events:
            record = events[-1]
            parsed = _json(record.value)
            parsed = parsed if isinstance(parsed, dict) else {}
            model = model or parsed.get("model")
            group = f"{settings.topic_prefix}scoring"
            committed = (await broker.committed(group, [TopicPartition(record.topic, record.partition)]))[
                TopicPartition(record.topic, record.partition)
            ]
            event = {
                "partition": record.partition,
                "offset": record.offset,
                "ts": parsed.get("ts"),
                "features": parsed.get("features"),
                "scored_by_group": committed is not None and record.offset < committed,
            }
        predictions = []
        for record in await _scan(broker, "predictions", key, lambda r: _event_id_of(r.value) == event_id):
            predictions.append({"partition": record.partition, "offset": record.offset, **_json(record.value)})
        model = model or (predictions[-1]["model"] if predictions else settings.model_name)

        model_key = model.encode()
        letters = [
            dead_letter_row(r)
            for r in await _scan(
                broker, "dead-letter", None, lambda r: r.key == key or _event_id_of(r.value) == event_id
            )
        ]
        labels_topic = settings.topic("labels")
        _, positions = learner_positions(client, settings, model, labels_topic)
        labels = []
        for record in await _scan(broker, "labels", model_key, lambda r: _event_id_of(r.value) == event_id):
            parsed = _json(record.value)
            letter = next(
                (
                    d
                    for d in letters
                    if d["source_topic"] == labels_topic
                    and (d["source_partition"], d["source_offset"]) == (record.partition, record.offset)
                ),
                None,
            )
            if letter is not None:
                status = f"dead-lettered: {letter['stage']}: {letter['error_class']}: {letter['reason']}"
            elif record.offset < positions.get(record.partition, 0):
                status = "learned"
            else:
                status = "not learned yet (the learner is behind it)"
            labels.append(
                {
                    "partition": record.partition,
                    "offset": record.offset,
                    "label": parsed.get("label"),
                    "ts": parsed.get("ts"),
                    "status": status,
                }
            )
        alerts = []
        for record in await _scan(broker, "alerts", model_key, lambda r: _event_id_of(r.value) == event_id):
            try:
                alerts.append(Alert.model_validate_json(record.value or b"").model_dump())
            except ValueError:
                continue
    times = [(event or {}).get("ts"), *(p.get("ts") for p in predictions), *(label["ts"] for label in labels)]
    at_ms = next((t for t in times if isinstance(t, int) and not isinstance(t, bool)), None)
    record_join = find_join(client, settings.redis_prefix, settings.label_ttl_seconds, model, event_id, at_ms)
    join = None
    if record_join is not None:
        join = {
            "features": record_join.x,
            "prediction": record_join.prediction,
            "probabilities": record_join.probabilities,
            "score": record_join.score,
            "version": record_join.version,
            "expires_ms": record_join.expires_ms,
            "challenger": record_join.challenger,
        }
    return {
        "event_id": event_id,
        "model": model,
        "found": bool(events or predictions or letters or labels or alerts or join),
        "event": event,
        "predictions": predictions,
        "join_record": join,
        "labels": labels,
        "learned": any(label["status"] == "learned" for label in labels),
        "dead_letters": letters,
        "alerts": alerts,
    }
