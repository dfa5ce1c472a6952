"""The scoring stage (pure): every record becomes exactly one prediction or one dead letter with a reason."""

from __future__ import annotations

import asyncio
import json
import traceback
from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.contract.records import (
    DLQ_ERROR_CLASS,
    DLQ_SOURCE_OFFSET,
    DLQ_STAGE,
    RecordError,
    parse_event,
    ts_window,
)
from driftline.models.bootstrap import bootstrap_model
from driftline.models.features import FeatureError
from driftline.models.scoring import Scored
from driftline.models.version import ModelVersion
from driftline.streams.publisher import Publisher
from driftline.streams.scoring_stage import LoadedModel, ScoringPolicy, model_names, score_records
from driftline.testing import InMemoryProducer, InMemoryRecord, InMemorySource
from tests.strategies import DAY_MS, NOW_MS, edge_events, hostile_events, malformed_events, valid_events

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
POLICY = ScoringPolicy(default_model="default", review_confidence_threshold=0.99, max_ts_future_ms=DAY_MS)


def records_of(values: list[bytes | None], keyed: bool = False) -> list[InMemoryRecord]:
    """The records a consumer of ``t.events`` would read for ``values`` (offsets 0, 1, ...)."""
    source = InMemorySource("t.events")
    for i, value in enumerate(values):
        source.send(value, key=f"m{i}".encode() if keyed else None)
    return source.poll()


def run(values: list[bytes | None], models=lambda name: LOADED if name == "default" else None, keyed=False):
    records = records_of(values, keyed)
    _, parsed = model_names(records, POLICY, NOW_MS)
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


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(st.lists(st.one_of(hostile_events(), valid_events()).map(lambda e: json.dumps(e).encode()), max_size=8))
def test_hostile_values_in_any_field_become_exactly_one_prediction_or_one_dead_letter(values):
    batch = run(values, keyed=True)
    keys = sorted([key for key, _ in batch.predictions] + [letter.key for letter in batch.dead_letters])
    assert keys == sorted(f"m{i}".encode() for i in range(len(values))), "each message: one output, exactly"
    for letter in batch.dead_letters:
        assert letter.stage in ("deserialize", "validate", "score") and letter.error_class and letter.message
    for _, value in batch.predictions:
        assert json.loads(value)["model"] == "default"


def hostile(**fields: object) -> bytes:
    event = {"event_id": "x", "ts": NOW_MS, "features": {"salary": 1.0}}
    return json.dumps({**event, **fields}).encode()


def test_values_that_fit_the_types_but_not_the_system_are_dead_lettered_at_the_record_boundary():
    cases = {
        "model": hostile(model="bad name"),
        "model_colon": hostile(model="a:b"),
        "model_unicode": hostile(model="modèle"),
        "ts_1e300": hostile(ts=1e300),
        "ts_10**25": hostile(ts=10**25),
        "ts_9226": hostile(ts="9226-01-01T00:00:00Z"),
        "ts_ahead": hostile(ts=NOW_MS + 2 * DAY_MS),
        "int_400_digits": hostile(features={"salary": 10**400}),
    }
    batch = run(list(cases.values()))
    assert batch.predictions == []
    reasons = {list(cases)[letter.offset]: (letter.error_class, letter.message) for letter in batch.dead_letters}
    assert reasons["model"] == reasons["model_colon"] == reasons["model_unicode"]
    assert "model name is 1-128 letters" in reasons["model"][1]
    assert "between 0 and" in reasons["ts_1e300"][1] and "between 0 and" in reasons["ts_10**25"][1]
    assert reasons["ts_9226"][0] == reasons["ts_ahead"][0] == "TimestampOutOfWindow"
    assert reasons["int_400_digits"] == ("ValidationError", "features.salary: does not fit a float64")


class ScorerFailingOn:
    """A scorer whose batch call raises when a row has ``salary == bad`` (and so does that row alone)."""

    def __init__(self, bad: float):
        self.bad = bad

    def score_batch(self, rows: list[dict]) -> list[Scored]:
        if any(row.get("salary") == self.bad for row in rows):
            raise ZeroDivisionError("float division by zero")
        return [Scored(True, {"True": 0.9, "False": 0.1}, 0.9, 0.9) for _ in rows]


def test_an_exception_no_check_anticipated_dead_letters_that_event_alone_and_the_batch_is_scored():
    loaded = LoadedModel(LOADED.meta, MODEL)
    loaded.__dict__["scorer"] = ScorerFailingOn(bad=13.0)
    values = [
        json.dumps({"event_id": str(i), "ts": NOW_MS, "features": {"salary": float(i)}}).encode() for i in range(30)
    ]
    batch = run(values, models=lambda name: loaded)
    (letter,) = batch.dead_letters
    assert (letter.offset, letter.stage, letter.error_class) == (13, "unexpected", "ZeroDivisionError")
    assert letter.message == "ZeroDivisionError: float division by zero", "the traceback's last line"
    assert sorted(int(json.loads(v)["event_id"]) for _, v in batch.predictions) == [i for i in range(30) if i != 13]
    assert len(batch.by_model["default"]) == 29, "join records and monitors see the scored events only"


def test_a_model_lookup_that_raises_dead_letters_its_events_as_unexpected():
    def lookup(name: str) -> LoadedModel:
        raise RuntimeError(f"registry exploded on {name}")

    (letter,) = run([hostile()], models=lookup).dead_letters
    assert (letter.stage, letter.error_class) == ("unexpected", "RuntimeError") and "exploded" in letter.message


def test_explanations_ride_on_the_predictions_and_one_that_fails_dead_letters_its_event_alone(monkeypatch):
    from driftline.streams import scoring_stage

    values = [
        json.dumps({"event_id": str(i), "ts": NOW_MS, "features": {"salary": float(i) * 1000, "age": 40.0}}).encode()
        for i in range(20)
    ]
    records = records_of(values)
    explaining = ScoringPolicy(default_model="default", explain_top_k=2)
    _, parsed = model_names(records, explaining, NOW_MS)
    batch = score_records(records, parsed, lambda name: LOADED, explaining, now_ms=lambda: 5.0)
    predictions = [json.loads(v) for _, v in batch.predictions]
    assert len(predictions) == 20 and not batch.dead_letters
    assert all(
        p["explanation"]["method"] == "linear" and len(p["explanation"]["contributions"]) <= 2 for p in predictions
    )
    assert "explanation" not in json.loads(run(values[:1]).predictions[0][1]), "off unless asked for"

    real = scoring_stage.explain_rows

    def failing(model, task, rows, top_k):
        if any(row.get("salary") == 13_000.0 for row in rows):
            raise FloatingPointError("overflow")
        return real(model, task, rows, top_k)

    monkeypatch.setattr(scoring_stage, "explain_rows", failing)
    batch = score_records(records, parsed, lambda name: LOADED, explaining, now_ms=lambda: 5.0)
    (letter,) = batch.dead_letters
    assert (letter.offset, letter.stage, letter.error_class) == (13, "unexpected", "FloatingPointError")
    assert len(batch.predictions) == 19 and len(batch.by_model["default"].explanations) == 19


def test_a_polled_batch_published_in_memory_gives_each_message_one_output_and_dead_letters_their_reason():
    """Source -> stage -> the worker's Publisher, no broker: predictions keyed by event id, each dead letter
    the original bytes with the stage, class and source offset in its headers; the batch is committed whole."""
    source = InMemorySource("t.events")
    good = [json.dumps(e).encode() for e in ({"event_id": f"e{i}", "ts": NOW_MS, "features": {}} for i in range(3))]
    source.extend([good[0], b"{", good[1], b'{"event_id": "x", "ts": 1, "features": {"age": [1]}}', good[2]])
    batch = source.poll(max_records=10)
    _, parsed = model_names(batch, POLICY, NOW_MS)
    scored = score_records(batch, parsed, lambda name: LOADED, POLICY, now_ms=lambda: 5.0)
    producer = InMemoryProducer(partitions=3)

    async def publish() -> None:
        publisher = Publisher(producer)
        await publisher.send_many("t.predictions", scored.predictions)
        await publisher.send_dead_letters("t.dead-letter", scored.dead_letters)
        await publisher.flush()

    asyncio.run(publish())
    source.commit(batch)
    assert sorted(r.key for r in producer.published("t.predictions")) == [b"e0", b"e1", b"e2"]
    letters = producer.published("t.dead-letter")
    assert [r.value for r in letters] == [b"{", b'{"event_id": "x", "ts": 1, "features": {"age": [1]}}']
    assert [(r.header(DLQ_STAGE), r.header(DLQ_ERROR_CLASS), r.header(DLQ_SOURCE_OFFSET)) for r in letters] == [
        ("deserialize", "JSONDecodeError", "1"),
        ("validate", "ValidationError", "3"),
    ]
    assert source.pending() == 0 and source.poll() == []


def one_at_a_time(value: bytes | None, policy: ScoringPolicy) -> tuple:
    """What the stage did before it worked per column: parse_event, prepare, predict_proba_one, one event at a time."""
    try:
        event = parse_event(value, policy.max_event_bytes, ts_window(NOW_MS, policy.max_ts_future_ms, None))
    except RecordError as error:
        return ("dead", error.stage, error.error_class, error.reason)
    name = event.model or policy.default_model
    if name != "default":
        return ("dead", "validate", "UnknownModel", f"no model named '{name}'")
    try:
        row = SCHEMA.prepare(event.features, policy.missing_feature_policy, policy.unknown_feature_policy)
    except FeatureError as error:
        return ("dead", "validate", "FeatureError", str(error))
    except Exception as error:  # noqa: BLE001 - the stage dead-letters what no check anticipated
        return ("dead", "unexpected", type(error).__name__, traceback.format_exception_only(error)[-1].strip())
    proba = MODEL.predict_proba_one(row)
    return ("scored", event.event_id, proba[False] < proba[True], proba[True], max(proba.values()), row)


small_malformed = malformed_events().filter(lambda raw: raw is None or len(raw) < 4096)
messages = st.one_of(
    small_malformed,
    edge_events(),
    st.one_of(hostile_events(), valid_events()).map(lambda e: json.dumps(e).encode()).filter(lambda v: len(v) < 4096),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(st.lists(messages, max_size=8), st.sampled_from(["impute", "reject"]), st.sampled_from(["ignore", "reject"]))
def test_per_column_the_stage_decides_and_scores_every_message_as_one_at_a_time(values, missing, unknown):
    policy = replace(POLICY, missing_feature_policy=missing, unknown_feature_policy=unknown)
    records = records_of(values)
    _, decoded = model_names(records, policy, NOW_MS)
    batch = score_records(records, decoded, lambda name: LOADED if name == "default" else None, policy)
    outcome = {d.offset: ("dead", d.stage, d.error_class, d.message) for d in batch.dead_letters}
    group = batch.by_model.get("default")
    for i, (_, value) in enumerate(batch.predictions):
        p = json.loads(value)
        outcome[group.records[i].offset] = (
            "scored",
            p["event_id"],
            p["prediction"],
            p["score"],
            p["confidence"],
            group.rows[i],
        )
    assert outcome == {i: one_at_a_time(v, policy) for i, v in enumerate(values)}


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(valid_events(), min_size=1, max_size=20), st.sampled_from([None, 0.5]))
def test_the_prediction_records_of_a_batch_are_the_bytes_built_one_at_a_time(events, threshold):
    """The batch's prediction records (built in one comprehension) are byte for byte those of _prediction."""
    from driftline.streams.scoring_stage import _prediction

    records = records_of([json.dumps(e).encode() for e in events])
    _, parsed = model_names(records, POLICY, NOW_MS)
    thresholds = {} if threshold is None else {"default": threshold}
    batch = score_records(records, parsed, lambda name: LOADED, POLICY, lambda: 1e13 + 0.25, thresholds)
    group = batch.by_model["default"]
    outputs = zip(group.event_ids, group.predictions, group.probabilities, group.scores, group.confidences, strict=True)
    expected = [
        _prediction("default", 3, 10**13, *output, float(np.round(max(0.0, 1e13 + 0.25 - record.timestamp), 3)))
        for output, record in zip(outputs, group.records, strict=True)
    ]
    assert [value for _, value in batch.predictions] == expected
