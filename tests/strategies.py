"""Hypothesis strategies for valid and malformed ``events`` messages (shared by unit and integration fuzz)."""

from __future__ import annotations

import json

from hypothesis import strategies as st

AGRAWAL = ("salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears", "loan")
ONE_MB = 1024 * 1024

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
event_ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)


@st.composite
def valid_events(draw: st.DrawFn) -> dict:
    """A valid event of the bootstrap schema; some features null or absent (imputed by policy)."""
    features = {name: draw(st.one_of(finite, st.integers(-(10**9), 10**9), st.none())) for name in AGRAWAL}
    for name in draw(st.sets(st.sampled_from(AGRAWAL), max_size=3)):
        features.pop(name)
    return {"event_id": draw(event_ids), "ts": draw(st.integers(0, 4_102_444_800_000)), "features": features}


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
