"""The peers of `driftline bench peers`: the same scoring job written as a user of each would write it.

Each runs in its own process (``python -m driftline.bench.peer_systems SYSTEM BROKER IN_TOPIC OUT_TOPIC GROUP``),
reads the events of ``IN_TOPIC`` from the beginning, scores each with the bootstrap model (the one a fresh
driftline worker registers: same data, same seed, so the same weights), and writes ``{"event_id", "prediction",
"score"}`` keyed by the event's key to ``OUT_TOPIC`` until it is stopped. They score only: no validation, no
dead letters, no join records, no monitors.

* ``quix``: a Quix Streams ``Application`` and ``StreamingDataFrame.apply`` (its JSON deserializer, one event at
  a time, at-least-once commits every 5 s, its default);
* ``bytewax``: ``KafkaSource`` -> ``map`` -> ``KafkaSink`` in one Bytewax worker;
* ``raw_confluent``: a plain confluent-kafka (librdkafka) loop: ``consume(500)``, ``predict_proba_many`` on the
  batch, produce, and commit a batch's offsets once its outputs are acknowledged (while the next is scored).

The client libraries are bench extras (``pip install 'driftline[bench]'``), imported only by the peer that
needs them.

>>> scorer = PeerScorer()
>>> out = scorer.score_value(b'{"event_id": "e1", "ts": 0, "features": {"salary": 50000.0, "age": 30.0}}')
>>> sorted(out), out["event_id"], 0.0 <= out["score"] <= 1.0
(['event_id', 'prediction', 'score'], 'e1', True)
>>> [o["event_id"] for o in scorer.score_values([b'{"event_id": "a", "features": {}}'] * 2)]
['a', 'a']
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import orjson
import pandas as pd

from driftline.models.bootstrap import bootstrap_model

#: librdkafka settings every peer's clients share (loopback broker, short waits, as driftline's worker).
CONSUMER_CONFIG = {"fetch.wait.max.ms": 50, "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1000}
PRODUCER_CONFIG = {"linger.ms": 5, "acks": "all"}


class PeerScorer:
    """The bootstrap model and the one scoring function every peer calls."""

    def __init__(self) -> None:
        self.model, self.schema, _ = bootstrap_model()

    def score_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """One decoded event -> its output record (``predict_proba_one``)."""
        proba = self.model.predict_proba_one(self.schema.prepare(event["features"]))
        score = proba.get(True, 0.0)
        return {"event_id": event["event_id"], "prediction": score >= 0.5, "score": score}

    def score_value(self, value: bytes) -> dict[str, Any]:
        return self.score_event(orjson.loads(value))

    def score_values(self, values: list[bytes]) -> list[dict[str, Any]]:
        """Many raw events at once (``predict_proba_many`` on one DataFrame)."""
        events = [orjson.loads(v) for v in values]
        frame = pd.DataFrame.from_records([self.schema.prepare(e["features"]) for e in events])
        scores = self.model.predict_proba_many(frame)[True].tolist() if len(frame.columns) else [0.0] * len(events)
        return [
            {"event_id": e["event_id"], "prediction": s >= 0.5, "score": s} for e, s in zip(events, scores, strict=True)
        ]


def run_quix(broker: str, in_topic: str, out_topic: str, group: str) -> None:
    from quixstreams import Application

    scorer = PeerScorer()
    app = Application(
        broker_address=broker,
        consumer_group=group,
        auto_offset_reset="earliest",
        consumer_extra_config=dict(CONSUMER_CONFIG),
        producer_extra_config=dict(PRODUCER_CONFIG),
        state_dir=f"/tmp/driftline-quix-{uuid.uuid4().hex[:8]}",
        use_changelog_topics=False,
        loglevel="WARNING",
    )
    source = app.topic(in_topic, key_deserializer="bytes", value_deserializer="json")
    sink = app.topic(out_topic, key_serializer="bytes", value_serializer="json")
    app.dataframe(source).apply(scorer.score_event).to_topic(sink)
    app.run()


def run_bytewax(broker: str, in_topic: str, out_topic: str, group: str) -> None:
    from bytewax import operators as op
    from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource
    from bytewax.dataflow import Dataflow
    from bytewax.run import cli_main

    scorer = PeerScorer()
    flow = Dataflow("peers")
    messages = op.input("in", flow, KafkaSource([broker], [in_topic], add_config=dict(CONSUMER_CONFIG)))
    scored = op.map("score", messages, lambda m: KafkaSinkMessage(m.key, orjson.dumps(scorer.score_value(m.value))))
    op.output("out", scored, KafkaSink([broker], out_topic, add_config=dict(PRODUCER_CONFIG)))
    cli_main(flow, workers_per_process=1)


def run_raw_confluent(broker: str, in_topic: str, out_topic: str, group: str) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    scorer = PeerScorer()
    consumer = Consumer(
        {
            "bootstrap.servers": broker,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **CONSUMER_CONFIG,
        }
    )
    producer = Producer({"bootstrap.servers": broker, **PRODUCER_CONFIG})
    consumer.subscribe([in_topic])
    in_flight: dict[tuple[str, int], int] = {}  # next offsets of the batch whose outputs are not acknowledged yet
    while True:
        batch = [m for m in consumer.consume(num_messages=500, timeout=0.05) if m.error() is None]
        outputs = scorer.score_values([m.value() for m in batch]) if batch else []
        if in_flight:
            producer.flush()  # the previous batch's outputs are acknowledged: commit it
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in in_flight.items()], asynchronous=True)
        in_flight = {(m.topic(), m.partition()): m.offset() + 1 for m in batch}
        for message, output in zip(batch, outputs, strict=True):
            producer.produce(out_topic, orjson.dumps(output), message.key())
        producer.poll(0)


PEERS = {"quix": run_quix, "bytewax": run_bytewax, "raw_confluent": run_raw_confluent}


if __name__ == "__main__":
    PEERS[sys.argv[1]](*sys.argv[2:6])
