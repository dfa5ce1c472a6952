"""Labels parsed a batch at a time are the labels (or the refusals) that parse_label gives one by one."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.contract.records import MAX_NUMBER, RecordError, parse_label, parse_labels

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "e1", "fraud", "2024-01-01T00:00:00Z", "x" * 300, "1.5", "true", "bad model!", "m-1"]),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)
label_objects = st.dictionaries(
    st.sampled_from(["event_id", "label", "ts", "model", "extra"]), values, max_size=5
) | st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=12),
        "label": st.one_of(st.booleans(), st.integers(-5, 5), st.sampled_from(["a", "b"]), st.integers(2**63, 2**80)),
        "ts": st.one_of(st.integers(0, 2**48), st.integers(-5, 5), st.sampled_from([1.5e12, "2024-01-01T00:00:00Z"])),
    },
    optional={"model": st.sampled_from([None, "m-1", "bad model!", 3, ""])},
)
#: Objects at the edges of what is built without pydantic's validation (records._plain_label): event ids of 256 and
#: 257 characters (some not ASCII), integer labels and timestamps at their bounds, model names of 128 and 129
#: characters or ending in a newline, fields in any order.
_EDGE_INT = int(MAX_NUMBER)
plain_objects = st.fixed_dictionaries(
    {
        "event_id": st.one_of(
            st.text(min_size=0, max_size=3),
            st.sampled_from(["e" * 256, "e" * 257, "é" * 256, "é" * 257, "\U0001f600" * 256, "a\n"]),
        ),
        "label": st.one_of(
            st.booleans(),
            st.text(max_size=3),
            st.integers(-(2**63), 2**64 - 1),
            st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), _EDGE_INT, -_EDGE_INT, _EDGE_INT + 1]),
        ),
        "ts": st.one_of(
            st.integers(-5, 2**64 - 1),
            st.sampled_from([0, 9, 10, 10**13, 10**13 + 1, 253_402_300_799_999, 253_402_300_800_000, True]),
        ),
    },
    optional={
        "model": st.one_of(
            st.none(),
            st.sampled_from(["m", "m-1", "a" * 128, "a" * 129, "m\n", "-m", "m.x_y", "", "bad model!", "é"]),
        ),
        "extra": st.integers(),
    },
).flatmap(lambda d: st.permutations(list(d.items())).map(dict))

messages = st.one_of(
    label_objects.map(lambda d: json.dumps(d).encode()),
    plain_objects.map(lambda d: json.dumps(d).encode()),
    plain_objects.map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    st.binary(max_size=40),
    st.sampled_from([None, b"", b"[]", b'{"event_id":"a","event_id":"b","label":1,"ts":5}', b'{"label": 1e400}']),
    st.sampled_from([b'{"event_id":"a","label":99999999999999999999999,"ts":5}', b'\xef\xbb\xbf{"event_id":"a"}']),
)


def outcome(result: Any) -> Any:
    """What a label or a refusal says: every field with its type, or the refusal's class, stage and reason."""
    if isinstance(result, RecordError):
        return ("refused", result.stage, result.error_class, result.reason)
    if isinstance(result, Exception):
        return ("raised", type(result).__name__, str(result))
    fields = result.model_dump()
    return tuple(
        (k, type(v).__name__, repr(v) if not (isinstance(v, float) and math.isnan(v)) else "nan")
        for k, v in sorted(fields.items())
    ) + (("set", tuple(sorted(result.model_fields_set))),)


def _same_as_alone(raws: list[Any], bounds: tuple[int, int], max_bytes: int = 65_536) -> None:
    """``parse_labels`` of ``raws`` says of each what ``parse_label`` of it alone says (or raises)."""
    got = parse_labels(raws, max_bytes, bounds)
    assert len(got) == len(raws)
    for raw, result in zip(raws, got, strict=True):
        try:
            alone: Any = parse_label(raw, max_bytes, bounds)
        except Exception as exc:  # noqa: BLE001 - compared with what the batch returned
            alone = exc
        assert outcome(result) == outcome(alone), raw
        if not isinstance(alone, Exception):
            assert result == alone and repr(result) == repr(alone) and hash(result) == hash(alone)
            assert result.model_dump_json() == alone.model_dump_json()


@settings(max_examples=400, deadline=None)
@given(st.lists(messages, max_size=12), st.sampled_from([65_536, 40]), st.sampled_from([(0, 2**62), (10, 10**13)]))
def test_a_batch_of_labels_parses_as_each_label_alone(raws, max_bytes, bounds) -> None:
    _same_as_alone(raws, bounds, max_bytes)


#: Objects every one of which is built without pydantic's validation (records._plain_label), at the edges of what it
#: accepts: a batch of them takes the batch path (records._plain_labels), column by column.
accepted_objects = st.fixed_dictionaries(
    {
        "event_id": st.one_of(st.text(min_size=1, max_size=3), st.sampled_from(["e" * 256, "é" * 256, "a\n"])),
        "label": st.one_of(
            st.booleans(),
            st.text(max_size=3),
            st.integers(-(2**63), 2**64 - 1),
            st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**64 - 1]),
        ),
        "ts": st.one_of(st.integers(10, 10**13), st.sampled_from([10, 10**13])),
    },
    optional={"model": st.one_of(st.none(), st.sampled_from(["m", "m-1", "a" * 128, "m.x_y"]))},
).flatmap(lambda d: st.permutations(list(d.items())).map(dict))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(accepted_objects.map(lambda d: json.dumps(d).encode()), min_size=1, max_size=12),
    st.one_of(st.none(), messages, plain_objects.map(lambda d: json.dumps(d).encode())),
    st.integers(0, 12),
)
def test_a_batch_of_plain_labels_is_built_at_once_as_each_label_alone(raws, odd, at) -> None:
    """A batch of plain labels takes the batch path; one other message among them (refused, not plain, or at the
    edges) sends the batch label by label, with the same results."""
    from driftline.contract.records import _loaded, _plain_labels

    bounds = (10, 10**13)
    assert _plain_labels(_loaded(raws, 65_536), *bounds) is not None
    if odd is not None:
        raws = [*raws[:at], odd, *raws[at:]]
    _same_as_alone(raws, bounds)


@pytest.mark.parametrize(
    "odd",
    [
        {"model": 3},
        {"model": ["m"]},
        {"model": "m\n"},
        {"model": "a" * 129},
        {"ts": 9},
        {"ts": 10**13 + 1},
        {"ts": True},
        {"ts": 10.0},
        {"label": 0.5},
        {"label": None},
        {"label": _EDGE_INT + 1},
        {"label": -_EDGE_INT - 1},
        {"event_id": ""},
        {"event_id": "e" * 257},
        {"event_id": 7},
        {"x": 1},
    ],
)
def test_one_label_that_is_not_plain_sends_its_batch_label_by_label(odd) -> None:
    from driftline.contract.records import _loaded, _plain_labels

    plain = [json.dumps({"event_id": f"e{i}", "label": i % 2 == 0, "ts": 10 + i}).encode() for i in range(3)]
    raws = [plain[0], json.dumps({"event_id": "e", "label": True, "ts": 10, **odd}).encode(), *plain[1:]]
    assert _plain_labels(_loaded(raws, 65_536), 10, 10**13) is None
    _same_as_alone(raws, (10, 10**13))
    _same_as_alone([*raws, None, b"{", b"x" * 70_000], (10, 10**13))  # no value, not JSON, too large


def test_the_fields_set_of_each_label_is_its_own() -> None:
    raws = [b'{"event_id": "e1", "label": true, "ts": 11}', b'{"event_id": "e2", "label": 1, "ts": 12, "model": null}']
    one, two = parse_labels(raws, 65_536, (10, 10**13))
    assert one.model_fields_set == {"event_id", "label", "ts"}
    assert two.model_fields_set == {"event_id", "label", "ts", "model"}
    assert one.model_fields_set is not two.model_fields_set
