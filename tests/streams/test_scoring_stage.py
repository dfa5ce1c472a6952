"""The scoring stage (pure): every record becomes exactly one prediction or one dead letter with a reason."""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.models.bootstrap import bootstrap_model
from driftline.models.version import ModelVersion
from driftline.streams.scoring_stage import LoadedModel, ScoringPolicy, model_names, score_records
from tests.strategies import malformed_events, valid_events

MODEL, SCHEMA, TASK = bootstrap_model(samples=300)
LOADED = LoadedModel(
    ModelVersion(
        name="default",
        version=3,
        parent=None,
        created_ms=0,
        sha256="",
        hmac="",
        task=TASK,
        schema=SCHEMA.to_dict(),
        metrics={},
        data_summary={},
        note="",
    ),
    MODEL,
)
POLICY = ScoringPolicy(default_model="default", review_confidence_threshold=0.99)


@dataclass
class Record:
    value: bytes | None
    offset: int = 0
    topic: str = "t.events"
    partition: int = 0
    key: bytes | None = None
    timestamp: int = 0


def run(values: list[bytes | None], models=lambda name: LOADED if name == "default" else None):
    records = [Record(v, offset=i) for i, v in enumerate(values)]
    _, parsed = model_names(records, POLICY)
    return score_records(records, parsed, models, POLICY, now_ms=lambda: 5.0)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(st.lists(st.one_of(malformed_events(), valid_events().map(lambda e: json.dumps(e).encode())), max_size=12))
def test_each_message_becomes_exactly_one_prediction_or_one_dead_letter_with_a_reason(values):
    batch = run(values)
    assert len(batch.predictions) + len(batch.dead_letters) == len(values)
    assert sorted(d.offset for d in batch.dead_letters) == sorted(set(d.offset for d in batch.dead_letters))
    for letter in batch.dead_letters:
        assert letter.value == values[letter.offset], "the original bytes go to the dead-letter topic untouched"
        assert letter.error_class and letter.message and letter.stage in ("deserialize", "validate")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(malformed_events())
def test_a_malformed_message_is_dead_lettered_never_scored(value):
    batch = run([value])
    assert batch.predictions == [] and len(batch.dead_letters) == 1


@settings(max_examples=200, deadline=None)
@given(valid_events())
def test_a_valid_event_is_scored_with_model_version_and_confidence(event):
    batch = run([json.dumps(event).encode()])
    assert batch.dead_letters == []
    ((key, value),) = batch.predictions
    prediction = json.loads(value)
    assert prediction["event_id"] == event["event_id"] and key == event["event_id"].encode()
    assert prediction["model_version"] == 3 and prediction["prediction"] in (True, False)
    assert 0.5 <= prediction["confidence"] <= 1


def test_an_event_for_an_unknown_model_is_dead_lettered_with_the_model_name():
    batch = run([json.dumps({"event_id": "a", "ts": 1, "model": "nope", "features": {}}).encode()])
    (letter,) = batch.dead_letters
    assert (letter.stage, letter.error_class) == ("validate", "UnknownModel") and "nope" in letter.message


def test_low_confidence_predictions_also_go_to_review():
    batch = run([json.dumps({"event_id": str(i), "ts": 1, "features": {"salary": 1e5}}).encode() for i in range(20)])
    assert len(batch.predictions) == 20
    assert batch.reviews and all(json.loads(v)["confidence"] < 0.99 for _, v in batch.reviews)
