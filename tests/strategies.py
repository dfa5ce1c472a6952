"""Hypothesis strategies for valid, malformed and hostile ``events`` and ``labels`` messages (shared by unit and
integration fuzz)."""

from __future__ import annotations

import json
import time

from hypothesis import strategies as st

from driftline.contract.records import MAX_TS_MS, MODEL_NAME_PATTERN

AGRAWAL = ("salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan")
ONE_MB = 1024 * 1024
#: "Now" of the test session: valid timestamps are at most this (the default window accepts a day ahead).
NOW_MS = int(time.time() * 1000)
DAY_MS = 86_400_000

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
event_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)


@st.composite
def valid_events(draw: st.DrawFn) -> dict:
    """A valid event of the bootstrap schema; some features null or absent (imputed by policy)."""
    features = {name: draw(st.one_of(finite, st.integers(-(10**9), 10**9), st.none())) for name in AGRAWAL}
    for name in draw(st.sets(st.sampled_from(AGRAWAL), max_size=3)):
        features.pop(name)
    return {"event_id": draw(event_ids), "ts": draw(st.integers(0, NOW_MS)), "features": features}


def _encode(event: dict) -> bytes:
    return json.dumps(event).encode()


def _with(event: dict, path: tuple[str, ...], value: object) -> dict:
    copy = json.loads(json.dumps(event))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


def _without(event: dict, key: str) -> dict:
    return {k: v for k, v in event.items() if k != key}


@st.composite
def malformed_events(draw: st.DrawFn) -> bytes | None:
    """One malformed message: bad UTF-8, truncated JSON, wrong types, NaN/inf, missing fields, 1 MB, nulls."""
    event = draw(valid_events())
    raw = _encode(event)
    feature = draw(st.sampled_from(AGRAWAL))
    kind = draw(
        st.sampled_from(
            ["utf8", "truncated", "wrong_type", "nested", "nan", "missing", "huge", "null", "not_object", "tombstone"]
        )
    )
    if kind == "utf8":
        cut = draw(st.integers(0, len(raw)))
        return (
            raw[:cut]
            + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]))
            + raw[cut:]
        )
    if kind == "truncated":
        return raw[: draw(st.integers(1, len(raw) - 1))]
    if kind == "wrong_type":
        path, value = draw(
            st.sampled_from(
                [
                    (("event_id",), 12),
                    (("ts",), [1]),
                    (("ts",), True),
                    (("features",), [1, 2]),
                    (("features", feature), "not-a-number"),
                    (("model",), 7),
                    (("ts",), "yesterday"),
                ]
            )
        )
        if path == ("features", feature):
            event.setdefault("features", {})
        return _encode(_with(event, path, value))
    if kind == "nested":
        return _encode(_with(event, ("features", feature), draw(st.sampled_from([{"a": 1}, [1.0], []]))))
    if kind == "nan":
        token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]))
        return _encode(_with(event, ("features", feature), 0.125)).replace(b"0.125", token.encode(), 1)
    if kind == "missing":
        return _encode(_without(event, draw(st.sampled_from(["event_id", "ts", "features"]))))
    if kind == "huge":
        return _encode(_with(event, ("features", feature), "x" * ONE_MB))
    if kind == "null":
        return _encode(_with(event, (draw(st.sampled_from(["event_id", "ts", "features"])),), None))
    if kind == "not_object":
        return draw(st.sampled_from([b"null", b"[]", b"42", b'"event"', b"", b" "]))
    return None  # a tombstone: a message without a value


def draw_many(strategy: st.SearchStrategy, n: int) -> list:
    """``n`` examples of ``strategy``, one per hypothesis example (a single example cannot hold thousands)."""
    from hypothesis import HealthCheck, given, settings

    drawn: list = []

    @settings(max_examples=n, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: object) -> None:
        drawn.append(value)

    collect()
    return drawn


# --- hostile: values that fit the record's types but not the system -------------------------------------------
any_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)
#: Numbers beyond float64, at its edges, and integers JSON carries but no float holds.
hostile_numbers = st.one_of(
    st.sampled_from([10**400, -(10**400), 10**309, 2**1024, -(2**1024), 10**25, 2**63, 2**64]),
    st.sampled_from([1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0.0]),
    st.integers(min_value=2**1024, max_value=10**500),
    st.integers(max_value=-(2**1024), min_value=-(10**500)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(),
)
hostile_model_names = st.one_of(
    st.sampled_from(["bad name", "a:b", "café", "", "x" * 129, "default\n", "-lead", ".", "a/b", "*", "default "]),
    any_text,
    st.from_regex(MODEL_NAME_PATTERN, fullmatch=True),  # well-formed names of models that do not exist
    st.integers(),
    st.lists(st.integers(), max_size=2),
)
hostile_ts = st.one_of(
    st.sampled_from(
        [1e300, 10**25, 10**400, -1, -1e300, MAX_TS_MS, MAX_TS_MS + 1, 2**63, 2**64, 7_226 * 31_556_952_000]
    ),
    st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "9226-01-01T00:00:00Z", "2026-13-01Z"]),
    st.integers(NOW_MS + 2 * DAY_MS, MAX_TS_MS),  # beyond the default window
    st.integers(0, NOW_MS),
    st.floats(allow_nan=False),
    st.booleans(),
    any_text,
)
hostile_feature_names = st.one_of(any_text, st.sampled_from(AGRAWAL), st.text(min_size=1000, max_size=2000))
hostile_feature_values = st.one_of(hostile_numbers, any_text, st.booleans(), st.none(), st.lists(st.integers()))


@st.composite
def hostile_events(draw: st.DrawFn, tag: str = "h") -> dict:
    """A valid-looking event with one or more fields replaced by hostile values (its ``event_id`` starts with
    ``tag`` unless the id itself is replaced by a non-string)."""
    event = draw(valid_events())
    event["event_id"] = f"{tag}-{event['event_id']}"
    for field in draw(
        st.sets(st.sampled_from(["event_id", "ts", "model", "feature_name", "feature_value"]), min_size=1)
    ):
        if field == "event_id":
            event["event_id"] = draw(st.one_of(any_text.map(lambda t: f"{tag}-{t}"), st.integers(), st.just("")))
        elif field == "ts":
            event["ts"] = draw(hostile_ts)
        elif field == "model":
            event["model"] = draw(hostile_model_names)
        elif field == "feature_name":
            event["features"][draw(hostile_feature_names)] = draw(hostile_feature_values)
        else:
            event["features"][draw(st.sampled_from(AGRAWAL))] = draw(hostile_feature_values)
    return event


@st.composite
def hostile_labels(draw: st.DrawFn, event_id: str, event_ts: int) -> dict:
    """A label of ``event_id`` (scored at ``event_ts``) with one or more fields replaced by hostile values."""
    label = {"event_id": event_id, "label": draw(st.booleans()), "ts": draw(st.integers(event_ts, event_ts + DAY_MS))}
    for field in draw(st.sets(st.sampled_from(["event_id", "label", "ts", "model"]), min_size=1)):
        if field == "event_id":
            label["event_id"] = draw(st.one_of(any_text, st.integers(), st.just(event_id + "\u0000")))
        elif field == "label":
            label["label"] = draw(st.one_of(hostile_numbers, any_text, st.none(), st.lists(st.booleans(), max_size=2)))
        elif field == "ts":
            label["ts"] = draw(hostile_ts)
        else:
            label["model"] = draw(hostile_model_names)
    return label


@st.composite
def edge_events(draw: st.DrawFn) -> bytes:
    """Messages near the edges of the contract, mostly one edge at a time (a hostile event usually fails early):
    numbers around 2**63 and 2**64 (where orjson and pydantic read integers differently) and beyond float64, bools
    and strings where numbers go, float and ISO timestamps, odd model names, extra fields and features."""
    big = st.sampled_from(
        [2**63, 2**64, -(2**63) - 1, 10**30, -(10**25), 2**53 + 1, 1e300, int(1.7976931348623157e308) + 1]
    )
    value = st.one_of(finite, st.integers(-(10**6), 10**6), big, st.booleans(), st.none(), st.text(max_size=4))
    plain = st.one_of(finite, st.integers(-(10**6), 10**6))
    features = {name: draw(plain) for name in AGRAWAL if draw(st.integers(0, 9))}
    for name in draw(st.lists(st.sampled_from([*AGRAWAL, "extra"]), max_size=2)):
        features[name] = draw(value)
    odd = draw(st.sampled_from(["none", "event_id", "ts", "model", "extra"]))
    event: dict = {
        "event_id": draw(st.one_of(st.just(""), st.integers(0, 9))) if odd == "event_id" else draw(event_ids),
        "ts": draw(st.integers(0, NOW_MS)),
        "features": features,
    }
    if odd == "ts":
        event["ts"] = draw(
            st.one_of(
                st.integers(-5, 2**60),
                st.integers(NOW_MS, NOW_MS + 2 * DAY_MS),
                st.floats(-1, 2e12, allow_nan=False),
                st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01T00:00:00", "soon"]),
                st.booleans(),
            )
        )
    if odd == "model" or draw(st.booleans()):
        event["model"] = draw(st.sampled_from([None, "default", "other", "", 7, "m" * 129, "a b", "default\n"]))
    if odd == "extra":
        event["extra"] = draw(st.sampled_from([1, [1, [2]], {"a": None}]))
    return json.dumps(event).encode()
