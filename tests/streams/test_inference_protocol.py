"""V2 requests become the stream's own records; what the protocol cannot read is a ProtocolError with a reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.contract.records import parse_event
from driftline.models.scoring import Scored
from driftline.streams.inference_protocol import MAX_ROWS, ProtocolError, parse_request, response


def request(*inputs: dict, **extra: object) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def tensor(name: str, data: list, datatype: str = "FP64", shape: list | None = None) -> dict:
    return {"name": name, "shape": shape or [len(data)], "datatype": datatype, "data": data}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[1, 2]", "a JSON object with 'inputs'"),
        (request(), "non-empty list of tensors"),
        (request(tensor("x", [1.0]), tensor("x", [2.0])), "same name"),
        (request(tensor("x", [1.0]), tensor("y", [1.0, 2.0])), "different numbers of rows: [1, 2]"),
        (request(tensor("x", [1.0], shape=[1, 3])), "one feature per input"),
        (request(tensor("x", [1.0], datatype="FP128")), "datatype 'FP128'"),
        (request(tensor("x", [1.5], datatype="INT32")), "INT32 but row 0 holds a float"),
        (request(tensor("x", [True], datatype="FP32")), "FP32 but row 0 holds a bool"),
        (request(tensor("x", [1.0, 2.0]), parameters={"event_id": "one"}), "one id per row"),
        (request(tensor("x", [1.0, 2.0]), parameters={"event_id": ["a"]}), "1 values for 2 rows"),
        (request(tensor("x", [1.0]), outputs=[{"name": "shap"}]), "unknown output(s) ['shap']"),
        (request(tensor("x", [1.0]), id=7), "'id' must be a string"),
        (request(tensor("x", [0.0] * (MAX_ROWS + 1))), f"1 to {MAX_ROWS} rows"),
        (request(tensor("x", [1.0]), parameters={"explain": 0}), "parameters.explain must be an integer"),
        (request(tensor("x", [1.0]), parameters={"explain": "3"}), "parameters.explain must be an integer"),
        (request(tensor("x", [1.0]), parameters={"explain": True}), "parameters.explain must be an integer"),
    ],
)
def test_requests_the_protocol_cannot_read_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as refused:
        parse_request(body, "m")
    assert reason in str(refused.value) and refused.value.status == 400


COLUMN_VALUES = {
    "FP64": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**40), 2**40)),
    "INT32": st.integers(-(2**31), 2**31 - 1),
    "BOOL": st.booleans(),
    "BYTES": st.text(max_size=20),
}


@given(st.data(), st.integers(1, 20))
def test_every_row_becomes_the_event_a_producer_would_publish(data: st.DataObject, n: int) -> None:
    datatypes = data.draw(st.lists(st.sampled_from(sorted(COLUMN_VALUES)), min_size=1, max_size=4))
    columns = {
        f"f{i}": (datatype, data.draw(st.lists(st.none() | COLUMN_VALUES[datatype], min_size=n, max_size=n)))
        for i, datatype in enumerate(datatypes)
    }
    ids = [f"id-{i}" for i in range(n)]
    body = request(
        *(tensor(name, values, datatype) for name, (datatype, values) in columns.items()),
        parameters={"event_id": ids, "ts": "2026-01-01T00:00:00Z"},
    )
    parsed = parse_request(body, "m", now_ms=5)
    assert parsed.joinable and parsed.event_ids == ids
    for i, record in enumerate(parsed.records):
        event = parse_event(record.value)
        assert event.features == {name: values[i] for name, (_, values) in columns.items()}
        assert (event.event_id, event.model, event.ts, record.offset) == (ids[i], "m", 1_767_225_600_000, i)


def test_the_response_has_one_element_per_row_and_only_the_outputs_asked_for() -> None:
    parsed = parse_request(request(tensor("x", [1.0, 2.0]), id="r", outputs=[{"name": "prediction"}]), "m")
    scored = [Scored("a", {"a": 0.6, "b": 0.4}, None, 0.6), Scored("b", {"b": 0.9, "a": 0.1}, None, 0.9)]
    answer = response("m", 4, parsed, parsed.event_ids, scored)
    assert answer == {
        "model_name": "m",
        "model_version": "4",
        "id": "r",
        "outputs": [{"name": "prediction", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}],
    }
    everything = response("m", 4, parse_request(request(tensor("x", [1.0, 2.0])), "m"), ["e1", "e2"], scored)
    probabilities = next(o for o in everything["outputs"] if o["name"] == "probabilities")
    assert probabilities["shape"] == [2, 2] and probabilities["data"] == [0.6, 0.4, 0.1, 0.9]
    assert "score" not in {o["name"] for o in everything["outputs"]}, "a multiclass model gives no score"


def test_explanations_are_one_json_document_per_row_when_asked_for() -> None:
    parsed = parse_request(request(tensor("x", [1.0, 2.0]), parameters={"explain": 2}), "m")
    assert parsed.explain_top_k == 2
    scored = [Scored(True, {"False": 0.4, "True": 0.6}, 0.6, 0.6)] * 2
    explained = {"method": "linear", "output": "logit", "intercept": 0.1, "contributions": {"x": 0.3}, "others": 0}
    answer = response("m", 1, parsed, parsed.event_ids, scored, [explained, None])
    [tensor_] = [o for o in answer["outputs"] if o["name"] == "explanation"]
    assert tensor_["datatype"] == "BYTES" and [json.loads(d) for d in tensor_["data"]] == [explained, None]
    assert "explanation" not in {o["name"] for o in response("m", 1, parsed, parsed.event_ids, scored)["outputs"]}
