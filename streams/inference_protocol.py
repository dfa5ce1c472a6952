"""The Open Inference Protocol (V2, as spoken by KServe, MLServer and Triton) over driftline's events (pure: no I/O).

An inference request carries one tensor per feature, one element per row (``shape`` ``[n]`` or ``[n, 1]``).
:func:`request_rows` turns it into one ``events`` record per row, so that the HTTP path goes through the very
validation, preparation and scoring the stream uses (:mod:`driftline.streams.scoring_stage`); a row that the
stream would dead-letter makes the request a 400 whose message is the dead letter's reason.

Optional request ``parameters``: ``event_id`` (a list, one per row, or a string for one row) makes the rows join
their labels like Kafka events; ``ts`` (epoch-ms or ISO-8601, one per row or one for all) is their event time;
``explain`` (1 to 1000) adds an ``explanation`` output: per row, the JSON of the top ``explain`` feature
contributions (:mod:`driftline.models.explain`; null for a model that cannot be explained).

Examples
--------
>>> body = b'''{"id": "r1", "parameters": {"event_id": ["a", "b"]}, "inputs": [
...   {"name": "x", "shape": [2], "datatype": "FP64", "data": [1.5, null]},
...   {"name": "c", "shape": [2, 1], "datatype": "BYTES", "data": [["red"], ["blue"]]}]}'''
>>> request = parse_request(body, "m", now_ms=1000)
>>> request.id, request.event_ids, request.joinable
('r1', ['a', 'b'], True)
>>> [r.value for r in request.records]
[b'{"event_id":"a","ts":1000,"model":"m","features":{"x":1.5,"c":"red"}}', \
b'{"event_id":"b","ts":1000,"model":"m","features":{"x":null,"c":"blue"}}']
>>> parse_request(b'{"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1, "two"]}]}', "m")
Traceback (most recent call last):
...
driftline.streams.inference_protocol.ProtocolError: input 'x' is FP32 but row 1 holds a str
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from driftline.models.features import FeatureSchema
from driftline.models.scoring import Scored

#: Most feature contributions a request may ask for per row.
MAX_EXPLAIN = 1000
#: Rows one request may carry (a larger request would hold the worker's event loop for too long).
MAX_ROWS = 10_000
#: Topic name the HTTP rows carry in their records (it names where a row came from in logs and errors).
HTTP_SOURCE = "http"

NUMERIC_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"}
DATATYPES = NUMERIC_TYPES | {"BOOL", "BYTES"}


class ProtocolError(ValueError):
    """A request the protocol cannot read; ``status`` is the HTTP status to answer with (400 unless said)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class HttpRecord:
    """One row of a request as an ``events`` record (what :class:`~driftline.streams.scoring_stage.RawRecord`
    reads): ``offset`` is the row's index in the request, ``timestamp`` when the request arrived."""

    offset: int
    key: bytes
    value: bytes
    timestamp: int
    topic: str = HTTP_SOURCE
    partition: int = 0


@dataclass
class InferenceRequest:
    """A parsed request: its records (one per row), the row event ids, what to answer with."""

    id: str | None
    records: list[HttpRecord]
    event_ids: list[str]
    joinable: bool
    outputs: list[str] | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    explain_top_k: int | None = None


def _per_row(value: Any, rows: int, name: str) -> list[Any]:
    if isinstance(value, list):
        if len(value) != rows:
            raise ProtocolError(f"parameters.{name} has {len(value)} values for {rows} rows")
        return value
    return [value] * rows


def _column(tensor: Any, index: int) -> tuple[str, list[Any]]:
    """The name and flat data of one input tensor, checked against its shape and datatype."""
    if not isinstance(tensor, dict):
        raise ProtocolError(f"inputs[{index}] is not an object")
    name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not name:
        raise ProtocolError(f"inputs[{index}] has no name")
    if datatype not in DATATYPES:
        raise ProtocolError(f"input '{name}' has datatype {datatype!r}; expected one of {sorted(DATATYPES)}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ProtocolError(f"input '{name}' needs a shape, a list of integers")
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise ProtocolError(f"input '{name}' has shape {shape}: one feature per input, shape [rows] or [rows, 1]")
    if not isinstance(data, list):
        raise ProtocolError(f"input '{name}' needs data, a list with one element per row")
    if len(shape) == 2 or (data and isinstance(data[0], list)):  # nested [[v], [v]]: one element per row
        if not all(isinstance(v, list) and len(v) == 1 for v in data):
            raise ProtocolError(f"input '{name}' has nested data that is not one element per row")
        data = [v[0] for v in data]
    if len(data) != shape[0]:
        raise ProtocolError(f"input '{name}' has shape {shape} but {len(data)} elements")
    for row, value in enumerate(data):
        if value is not None and not _fits(datatype, value):
            raise ProtocolError(f"input '{name}' is {datatype} but row {row} holds a {type(value).__name__}")
    return name, data


def _fits(datatype: str, value: Any) -> bool:
    if datatype == "BYTES":
        return isinstance(value, str)
    if datatype == "BOOL":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return datatype.startswith("FP") or isinstance(value, int) or value.is_integer()


def parse_request(body: bytes, model: str, now_ms: int = 0, max_rows: int = MAX_ROWS) -> InferenceRequest:
    """One ``events`` record per row of the V2 inference request ``body`` for ``model``; raises
    :class:`ProtocolError` when the request is not one (the rows themselves are validated by the scoring stage).
    """
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"deserialize: JSONDecodeError: {exc}") from None
    if not isinstance(request, dict):
        raise ProtocolError("the request must be a JSON object with 'inputs'")
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ProtocolError("the request needs 'inputs', a non-empty list of tensors")
    columns = dict(_column(tensor, i) for i, tensor in enumerate(inputs))
    if len(columns) != len(inputs):
        raise ProtocolError("two inputs have the same name")
    rows = {len(data) for data in columns.values()}
    if len(rows) != 1:
        raise ProtocolError(f"inputs have different numbers of rows: {sorted(rows)}")
    n = rows.pop()
    if not 1 <= n <= max_rows:
        raise ProtocolError(f"a request holds 1 to {max_rows} rows, this one {n}")
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("'parameters' must be an object")
    given = parameters.get("event_id")
    joinable = given is not None
    if joinable:
        if n > 1 and not isinstance(given, list):
            raise ProtocolError("parameters.event_id needs one id per row (a list)")
        event_ids = _per_row(given, n, "event_id")
    else:
        stem = uuid.uuid4().hex
        event_ids = [f"http-{stem}-{i}" for i in range(n)]
    times = _per_row(parameters.get("ts", now_ms), n, "ts")
    explain = parameters.get("explain")
    if explain is not None and (type(explain) is not int or not 1 <= explain <= MAX_EXPLAIN):
        raise ProtocolError(f"parameters.explain must be an integer from 1 to {MAX_EXPLAIN} (top features)")
    outputs = _requested_outputs(request.get("outputs"))
    names = list(columns)
    records = []
    for i, (event_id, ts) in enumerate(zip(event_ids, times, strict=True)):
        event = {"event_id": event_id, "ts": ts, "model": model, "features": {c: columns[c][i] for c in names}}
        key = event_id.encode() if isinstance(event_id, str) else b""
        records.append(HttpRecord(i, key, orjson.dumps(event), now_ms))
    return InferenceRequest(request_id, records, [str(e) for e in event_ids], joinable, outputs, parameters, explain)


def _requested_outputs(outputs: Any) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise ProtocolError("'outputs' must be a list of objects with a 'name'")
    names = [o["name"] for o in outputs]
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise ProtocolError(f"unknown output(s) {unknown}; this model has {list(OUTPUTS)}")
    return names


#: What a response can hold, in this order.
OUTPUTS = ("prediction", "probabilities", "score", "confidence", "model_version", "event_id", "explanation")


def datatype_of(values: Sequence[Any]) -> str:
    """The V2 datatype of a column of plain values (None elements ignored).

    >>> datatype_of([True, None]), datatype_of([1, 2]), datatype_of([1, 2.5]), datatype_of(["a", 1])
    ('BOOL', 'INT64', 'FP64', 'BYTES')
    """
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "BOOL"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "INT64"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "FP64"
    return "BYTES"


def _tensor(name: str, data: list[Any], datatype: str | None = None, **parameters: Any) -> dict[str, Any]:
    datatype = datatype or datatype_of(data)
    if datatype == "BYTES":
        data = [v if v is None or isinstance(v, str) else str(v) for v in data]
    tensor: dict[str, Any] = {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}
    if parameters:
        tensor["parameters"] = parameters
    return tensor


def response(
    model: str,
    version: int,
    request: InferenceRequest,
    event_ids: Sequence[str],
    scored: Sequence[Scored],
    explanations: Sequence[dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The V2 inference response for ``scored`` rows (in request order).

    ``probabilities`` is an ``FP64`` tensor of shape ``[rows, classes]`` whose class names are its
    ``parameters.classes``; ``score`` (positive-class probability or regression value) and ``confidence`` are
    left out when the model gives none. ``explanation`` (when ``explanations`` are given) is a ``BYTES`` tensor
    of one JSON document per row.

    >>> request = InferenceRequest("r1", [], ["a"], False)
    >>> out = response("m", 3, request, ["a"], [Scored(True, {"False": 0.2, "True": 0.8}, 0.8, 0.8)])
    >>> out["model_version"], [o["name"] for o in out["outputs"]]
    ('3', ['prediction', 'probabilities', 'score', 'confidence', 'model_version', 'event_id'])
    >>> probabilities = out["outputs"][1]
    >>> probabilities["shape"], probabilities["data"], probabilities["parameters"]
    ([1, 2], [0.2, 0.8], {'classes': ['False', 'True']})
    """
    n = len(scored)
    tensors: dict[str, dict[str, Any]] = {"prediction": _tensor("prediction", [s.prediction for s in scored])}
    if any(s.probabilities for s in scored):
        classes = sorted({c for s in scored for c in s.probabilities or {}})
        flat = [(s.probabilities or {}).get(c, 0.0) for s in scored for c in classes]
        tensors["probabilities"] = _tensor("probabilities", flat, "FP64", classes=classes)
        tensors["probabilities"]["shape"] = [n, len(classes)]
    for name in ("score", "confidence"):
        values = [getattr(s, name) for s in scored]
        if any(v is not None for v in values):
            tensors[name] = _tensor(name, values, "FP64")
    tensors["model_version"] = _tensor("model_version", [version] * n, "INT64")
    tensors["event_id"] = _tensor("event_id", list(event_ids), "BYTES")
    if explanations is not None:
        tensors["explanation"] = _tensor("explanation", [orjson.dumps(e).decode() for e in explanations], "BYTES")
    wanted = request.outputs or [name for name in OUTPUTS if name in tensors]
    body: dict[str, Any] = {"model_name": model, "model_version": str(version)}
    if request.id is not None:
        body["id"] = request.id
    body["outputs"] = [tensors[name] for name in wanted if name in tensors]
    return body


def model_metadata(name: str, version: int, task: str, schema: FeatureSchema, platform: str) -> dict[str, Any]:
    """The V2 model metadata: inputs (one per feature, FP64 or BYTES by its kind) and outputs.

    >>> meta = model_metadata("m", 2, "binary", FeatureSchema({"x": "numeric", "c": "categorical"}), "river")
    >>> meta["versions"], meta["inputs"]
    (['2'], [{'name': 'x', 'datatype': 'FP64', 'shape': [-1]}, {'name': 'c', 'datatype': 'BYTES', 'shape': [-1]}])
    """
    inputs = [
        {"name": feature, "datatype": "FP64" if kind == "numeric" else "BYTES", "shape": [-1]}
        for feature, kind in schema.kinds.items()
    ]
    outputs = [{"name": "prediction", "datatype": "FP64" if task == "regression" else "BYTES", "shape": [-1]}]
    if task != "regression":
        outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, -1]})
    outputs += [
        {"name": "score", "datatype": "FP64", "shape": [-1]},
        {"name": "model_version", "datatype": "INT64", "shape": [-1]},
        {"name": "event_id", "datatype": "BYTES", "shape": [-1]},
    ]
    if task != "regression":
        outputs.insert(3, {"name": "confidence", "datatype": "FP64", "shape": [-1]})
    return {
        "name": name,
        "versions": [str(version)],
        "platform": platform,
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"task": task},
    }
