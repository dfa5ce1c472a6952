"""decode_events: every message accepted or rejected exactly as parse_event does it one at a time.

One documented difference: orjson reads an integer of 2**63 or more as a float (its value rounded to a float64),
pydantic as an int; the feature columns re-read such rows with parse_event (tests/streams/test_scoring_stage.py
checks the stage end to end), so here both sides compare such numbers as floats."""

from __future__ import annotations

import json

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.contract.event_batch import _plain_batch, decode_events
from driftline.contract.records import RecordError, parse_event, ts_window
from tests.strategies import DAY_MS, NOW_MS, edge_events, hostile_events, malformed_events, valid_events

small_malformed = malformed_events().filter(lambda raw: raw is None or len(raw) < 4096)
messages = st.one_of(
    small_malformed,
    edge_events(),
    st.one_of(hostile_events(), valid_events()).map(lambda e: json.dumps(e).encode()).filter(lambda v: len(v) < 4096),
)
BOUNDS = ts_window(NOW_MS, DAY_MS, None)


def features_json(features: dict) -> str:
    return json.dumps({k: float(v) if type(v) is int and abs(v) >= 2**63 else v for k, v in features.items()})


def rejection(error: Exception) -> tuple:
    if isinstance(error, RecordError):
        return ("rejected", error.stage, error.error_class, error.reason)
    return ("rejected", "unexpected", type(error).__name__, str(error))


def one_at_a_time(raw: bytes | None, max_bytes: int) -> tuple:
    try:
        event = parse_event(raw, max_bytes, BOUNDS)
    except Exception as error:  # noqa: BLE001 - RecordError, or what the batch reports as the message's error
        return rejection(error)
    return ("accepted", event.event_id, event.ts, event.model, features_json(event.features))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(st.lists(messages, max_size=8), st.sampled_from([64, 65_536]))
def test_the_batch_decodes_each_message_as_parse_event_does(raws, max_bytes):
    batch = decode_events(raws, max_bytes, BOUNDS)
    outcome: dict[int, tuple] = {row: rejection(error) for row, error in batch.errors}
    for row, event_id, ts, model, features in zip(
        batch.rows, batch.event_ids, batch.ts, batch.models, batch.features, strict=True
    ):
        assert row not in outcome
        outcome[row] = ("accepted", event_id, ts, model, features_json(features))
    assert batch.rows == sorted(batch.rows)
    assert outcome == {row: one_at_a_time(raw, max_bytes) for row, raw in enumerate(raws)}


def _decoded_or_none(raw: bytes | None) -> object:
    try:
        return orjson.loads(raw)
    except Exception:  # noqa: BLE001 - not JSON: the batch decodes it itself
        return None


def _outcome(batch: object) -> tuple:
    fields = vars(batch)
    return tuple(fields[k] for k in ("rows", "event_ids", "ts", "models", "features")), [
        (row, rejection(error)) for row, error in fields["errors"]
    ]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(st.lists(messages, max_size=8), st.sampled_from([64, 65_536]))
def test_messages_already_decoded_by_the_merge_give_the_same_batch(raws, max_bytes):
    """The merge by event time decodes each message first; the batch reuses those values and decides alike."""
    values = [_decoded_or_none(raw) for raw in raws]
    assert _outcome(decode_events(raws, max_bytes, BOUNDS, values)) == _outcome(decode_events(raws, max_bytes, BOUNDS))


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(
    st.lists(valid_events().map(lambda e: json.dumps(e).encode()), min_size=1, max_size=20),
    st.lists(st.tuples(st.integers(0, 19), messages), max_size=1),
    st.sampled_from([64, 65_536]),
    st.booleans(),
)
def test_a_batch_of_plain_events_is_decided_at_once_as_each_alone(plain, others, max_bytes, decoded):
    """The column pass (:func:`_plain_batch`) takes a batch of plain events (no model) whole, and gives up on one
    with any other message: either way each message's outcome is parse_event's."""
    raws: list[bytes | None] = list(plain)
    for position, raw in others:
        raws.insert(min(position, len(raws)), raw)
    values = [_decoded_or_none(raw) for raw in raws] if decoded else None
    batch = decode_events(raws, max_bytes, BOUNDS, values)
    outcome: dict[int, tuple] = {row: rejection(error) for row, error in batch.errors}
    for row, event_id, ts, model, features in zip(
        batch.rows, batch.event_ids, batch.ts, batch.models, batch.features, strict=True
    ):
        outcome[row] = ("accepted", event_id, ts, model, features_json(features))
    expected = {row: one_at_a_time(raw, max_bytes) for row, raw in enumerate(raws)}
    assert outcome == expected
    whole = _plain_batch(raws, max_bytes, *BOUNDS, values)
    if not others and all(o[0] == "accepted" for o in expected.values()) and all(b'"model"' not in r for r in raws):
        assert whole is not None, "a batch of plain events is taken whole"
    if whole is not None:
        assert _outcome(whole) == _outcome(decode_events(raws, max_bytes, BOUNDS, values))
