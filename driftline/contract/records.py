"""Record schemas of the topic contract, shared by producers, agents and tests (docs/ARCHITECTURE.md).

Parsing and validation happen in one step (:func:`parse_event`, :func:`parse_label`), and every failure says
at which stage it failed (``deserialize`` or ``validate``) and why.

Examples
--------
>>> e = parse_event(b'{"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "features": {"x": 1}}')
>>> e.event_id, e.ts, e.features
('e1', 1767225600000, {'x': 1})
>>> parse_event(b'{"event_id": "e1"')
Traceback (most recent call last):
...
driftline.contract.records.RecordError: deserialize: JSONDecodeError: EOF while parsing an object at line 1 column 17
>>> try:
...     parse_event(b'{"event_id": "e1", "ts": 1, "features": {"x": [1]}}')
... except RecordError as error:
...     print(error.stage, error.reason)
validate features.x: expects a number, string, bool or null (nested values are not allowed)

Values that fit the types but not the system are refused too: model names outside :data:`MODEL_NAME_PATTERN`,
numbers beyond float64, timestamps outside the window the caller accepts (``ts_bounds``: by default any time from
1970 to :data:`MAX_TS_MS`; the worker passes ``Settings.ts_bounds``, a window around now):

>>> def reason(parse, raw, **limits):
...     try:
...         parse(raw, **limits)
...     except RecordError as error:
...         return f"{error.error_class}: {error.reason}"
>>> reason(parse_event, b'{"event_id": "e1", "ts": 1, "model": "bad name", "features": {}}')
"ValidationError: model: a model name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
>>> reason(parse_event, b'{"event_id": "e1", "ts": 1, "features": {"x": 1' + b"0" * 400 + b'}}')
'ValidationError: features.x: does not fit a float64'
>>> reason(parse_label, b'{"event_id": "e1", "ts": 1e300, "label": true}')
'ValidationError: ts: ts must be an epoch-ms between 0 and 253402300799999 (9999-12-31)'
>>> reason(parse_label, b'{"event_id": "e1", "ts": 5000, "label": true}', ts_bounds=(0, 1000))
'TimestampOutOfWindow: ts 5000 is outside the accepted window [0, 1000]'
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import re
import time
from datetime import datetime
from itertools import repeat
from typing import Annotated, Any, Literal, NoReturn

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
)

from driftline.contract import headers

#: Model names: letters, digits, ``.``, ``_`` and ``-``, at most 128, starting with a letter or digit (they are part
#: of Redis keys and Prometheus labels).
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MODEL_NAME_RULE = "a model name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
#: The latest timestamp any record may carry (9999-12-31T23:59:59.999Z, the last one ISO-8601 can write).
MAX_TS_MS = 253_402_300_799_999
#: The largest magnitude of a number in a record: the largest float64 (a larger integer cannot become a feature).
MAX_NUMBER = 1.7976931348623157e308
_MAX_INT = int(MAX_NUMBER)

AlertKind = Literal[
    "data_drift", "prediction_drift", "concept_drift", "data_quality", "performance", "model_integrity", "offsets_reset"
]
Severity = Literal["info", "warning", "critical"]

# The dead-letter vocabulary lives in driftline.contract.headers (no pydantic there), and is named here as well.
Stage = headers.Stage
DLQ_SOURCE_TOPIC = headers.DLQ_SOURCE_TOPIC
DLQ_SOURCE_PARTITION = headers.DLQ_SOURCE_PARTITION
DLQ_SOURCE_OFFSET = headers.DLQ_SOURCE_OFFSET
DLQ_STAGE = headers.DLQ_STAGE
DLQ_ERROR_CLASS = headers.DLQ_ERROR_CLASS
DLQ_ERROR_MESSAGE = headers.DLQ_ERROR_MESSAGE
DLQ_VALUE_TRUNCATED = headers.DLQ_VALUE_TRUNCATED


class RecordError(ValueError):
    """A message that cannot become a record, with the stage and the error class that rejected it."""

    def __init__(self, stage: Stage, error_class: str, message: str):
        super().__init__(f"{stage}: {error_class}: {message}")
        self.stage = stage
        self.error_class = error_class
        self.reason = message


def epoch_ms(value: Any) -> int:
    """Epoch milliseconds from epoch-ms numbers or ISO-8601 strings.

    >>> epoch_ms(1700000000000), epoch_ms("2023-11-14T22:13:20+00:00")
    (1700000000000, 1700000000000)
    """
    if isinstance(value, bool):
        raise ValueError("ts must be epoch-ms or ISO-8601, got bool")
    if isinstance(value, int | float):
        # compared before any conversion: a 400-digit int or 1e300 must not reach int()/float() arithmetic
        if not (isinstance(value, int) or math.isfinite(value)) or not 0 <= value <= MAX_TS_MS:
            raise ValueError(f"ts must be an epoch-ms between 0 and {MAX_TS_MS} (9999-12-31)")
        return int(value)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError("ISO-8601 ts needs a timezone")
        try:
            ms = int(parsed.timestamp() * 1000)
        except (OverflowError, ValueError):  # 9999-12-31 with a negative offset is after the last datetime
            ms = -1
        if not 0 <= ms <= MAX_TS_MS:
            raise ValueError(f"ts must be between 1970-01-01 and 9999-12-31, got {value!r}")
        return ms
    raise ValueError(f"ts must be epoch-ms or ISO-8601, got {type(value).__name__}")


def now_ms() -> int:
    return int(time.time() * 1000)


#: Epoch-ms in the records; producers may also send ISO-8601 with a timezone (the JSON Schema says both).
Timestamp = Annotated[
    int,
    BeforeValidator(epoch_ms),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": MAX_TS_MS, "description": "epoch milliseconds"},
                {"type": "string", "format": "date-time", "description": "ISO-8601 with a timezone"},
            ]
        },
        mode="validation",
    ),
]
#: An integer a float64 can hold (compared in pydantic's core: costs nothing for floats, ~0.1 µs an int).
BoundedInt = Annotated[StrictInt, Field(ge=-_MAX_INT, le=_MAX_INT)]
ModelName = Annotated[str, Field(min_length=1, max_length=128, pattern=MODEL_NAME_PATTERN.pattern)]


class Event(BaseModel):
    """An event to score."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    event_id: str = Field(min_length=1, max_length=256)
    ts: Timestamp
    model: ModelName | None = None
    #: Scalars only, checked in pydantic's core (a Python validator here cost ~8 µs an event).
    features: dict[str, StrictBool | BoundedInt | StrictFloat | StrictStr | None]


#: The longest event id of a label, in characters.
MAX_LABEL_EVENT_ID = 256


# parse_labels builds the plainest labels without validation (_plain_label): a rule added to Label is added there
# too; a property test compares them. (The docstring below is the published schema's description.)
class Label(BaseModel):
    """The true outcome of an event, possibly long after it."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    event_id: str = Field(min_length=1, max_length=MAX_LABEL_EVENT_ID)
    label: float | Annotated[int, Field(ge=-_MAX_INT, le=_MAX_INT)] | str | bool
    ts: Timestamp
    model: ModelName | None = None


class Prediction(BaseModel):
    """What the scorer publishes for each valid event."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    model: str
    model_version: int
    prediction: Any
    probabilities: dict[str, float] | None = None
    score: float | None = None
    confidence: float | None = None
    latency_ms: float
    ts: int
    #: Opt-in (``DRIFTLINE_EXPLAIN_TOP_K``): the top feature contributions to this score, see
    #: :mod:`driftline.models.explain` (method, output, intercept, contributions, others).
    explanation: dict[str, Any] | None = None


class Alert(BaseModel):
    """A typed drift, quality, performance or integrity alert."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    kind: AlertKind
    severity: Severity
    model: str
    model_version: int | None = None
    feature: str | None = None
    detector: str
    statistic: float | None = None
    threshold: float | None = None
    window: int | None = None
    event_id: str | None = None
    ts: int
    message: str
    action: str = "none"


#: Every timestamp a record may carry (the default ``ts_bounds``).
ANY_TS = (0, MAX_TS_MS)


def ts_window(now: int, future_ms: int | None, past_ms: int | None) -> tuple[int, int]:
    """The ``ts_bounds`` at ``now`` accepting up to ``future_ms`` ahead and ``past_ms`` behind (None: no limit).

    >>> ts_window(10_000, 1_000, None), ts_window(10_000, None, 4_000)
    ((0, 11000), (6000, 253402300799999))
    """
    low = 0 if past_ms is None else max(0, now - past_ms)
    return low, MAX_TS_MS if future_ms is None else min(MAX_TS_MS, now + future_ms)


def _parse(model: type[BaseModel], raw: bytes | None, max_bytes: int, ts_bounds: tuple[int, int]) -> Any:
    if raw is None:
        raise RecordError("deserialize", "EmptyMessage", "message has no value")
    if len(raw) > max_bytes:
        raise RecordError("validate", "PayloadTooLarge", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        record = model.model_validate_json(raw)
    except ValidationError as exc:
        _raise_validation_error(exc)
    low, high = ts_bounds
    if not low <= record.ts <= high:
        raise RecordError(
            "validate", "TimestampOutOfWindow", f"ts {record.ts} is outside the accepted window [{low}, {high}]"
        )
    return record


def _raise_validation_error(exc: ValidationError) -> NoReturn:
    errors = exc.errors()
    first = errors[0]
    if first["type"] in ("json_invalid", "json_type"):
        raise RecordError("deserialize", "JSONDecodeError", first["msg"].removeprefix("Invalid JSON: ")) from exc
    loc = first["loc"]
    if len(loc) >= 2 and loc[0] == "features":
        where = f"features.{loc[1]}"
        types = {e["type"] for e in errors}
        if types & {"less_than_equal", "greater_than_equal"}:  # an int beyond float64 (also inf as a float)
            message = "does not fit a float64"
        elif "finite_number" in types:
            message = "NaN and infinity are not allowed"
        else:
            message = "expects a number, string, bool or null (nested values are not allowed)"
    elif first["type"] == "string_pattern_mismatch" and loc == ("model",):
        where, message = "model", MODEL_NAME_RULE
    else:
        where = ".".join(str(p) for p in loc) or "record"
        message = first["msg"].removeprefix("Value error, ")
    raise RecordError("validate", "ValidationError", f"{where}: {message}") from exc


def parse_event(raw: bytes | None, max_bytes: int = 65_536, ts_bounds: tuple[int, int] = ANY_TS) -> Event:
    """Parse and validate one ``events`` message; its ``ts`` must lie within ``ts_bounds`` (epoch-ms, inclusive)."""
    return _parse(Event, raw, max_bytes, ts_bounds)


def parse_label(raw: bytes | None, max_bytes: int = 65_536, ts_bounds: tuple[int, int] = ANY_TS) -> Label:
    """Parse and validate one ``labels`` message; its ``ts`` must lie within ``ts_bounds`` (epoch-ms, inclusive)."""
    return _parse(Label, raw, max_bytes, ts_bounds)


#: Types of a label's ``label`` and ``ts`` that JSON and orjson read alike (a JSON integer past 64 bits is an int to
#: pydantic, a float to orjson: a float label takes the JSON path).
_PLAIN_LABELS, _LABEL_FIELDS = frozenset((bool, str, int)), frozenset(Label.model_fields)
#: A model name, whole (``re.fullmatch``: ``$`` would let a trailing newline through, pydantic's pattern does not).
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN.pattern.removeprefix("^").removesuffix("$"))


def _plain_label(data: dict[str, Any], low: int, high: int) -> Label | None:
    """The label of an object orjson read whose fields need no conversion (a non-empty ``event_id`` of at most
    256 characters, a bool, string or bounded integer ``label``, an integer ``ts`` within ``[low, high]`` and the
    accepted years, an absent, null or well-formed ``model``), built without pydantic's validation (~0.9 us a label,
    a third of it the ``ts`` validator in Python); None for any other, which pydantic then validates. The labels
    pydantic builds from the same objects (a property test).

    >>> _plain_label({"event_id": "e1", "label": True, "ts": 5}, 0, 10)
    Label(event_id='e1', label=True, ts=5, model=None)
    >>> _plain_label({"event_id": "e1", "label": True, "ts": 11}, 0, 10) is None
    True
    """
    event_id, y, ts, model = data.get("event_id"), data.get("label"), data.get("ts"), data.get("model")
    if (
        type(event_id) is not str
        or not 0 < len(event_id) <= MAX_LABEL_EVENT_ID
        or type(ts) is not int
        or not (low <= ts <= high and 0 <= ts <= MAX_TS_MS)
        or not (type(y) is bool or type(y) is str or (type(y) is int and -_MAX_INT <= y <= _MAX_INT))
        or not (model is None or (type(model) is str and _MODEL_NAME.fullmatch(model)))
        or not data.keys() <= _LABEL_FIELDS
    ):
        return None
    label = _new(Label)
    _SET_DICT(label, {"event_id": event_id, "label": y, "ts": ts, "model": model})
    _SET_FIELDS_SET(label, set(data))
    _SET_EXTRA(label, None)
    _SET_PRIVATE(label, None)
    return label


_new = object.__new__
#: The setters of a label's slots (pydantic's BaseModel keeps its fields in ``__dict__``), and a consumer of an
#: iterator that keeps nothing.
_SET_DICT, _SET_FIELDS_SET, _SET_EXTRA, _SET_PRIVATE = (
    vars(BaseModel)[name].__set__
    for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
)
_drain = collections.deque(maxlen=0).extend
#: The types :func:`_plain_labels` accepts in a batch's columns (``type(None)``: no model).
_PLAIN_MODELS = frozenset((type(None), str))


def _loaded(raws: list[bytes | None], max_bytes: int) -> list[Any]:
    """What ``orjson.loads`` reads from each message; None where there is no value, it is larger than
    ``max_bytes`` or is not JSON (those go through :func:`parse_label`, which says why). At once for the usual
    batch, message by message when one of them is not JSON."""
    if None not in raws and max(map(len, raws), default=0) <= max_bytes:  # type: ignore[arg-type]
        try:
            return list(map(orjson.loads, raws))  # type: ignore[arg-type]
        except orjson.JSONDecodeError:
            pass
    out: list[Any] = []
    for raw in raws:
        data = None
        if raw is not None and len(raw) <= max_bytes:
            with contextlib.suppress(orjson.JSONDecodeError):
                data = orjson.loads(raw)
        out.append(data)
    return out


def _plain_labels(datas: list[Any], low: int, high: int) -> list[Label] | None:
    """The labels of a batch of objects every one of which :func:`_plain_label` builds, checked a column at a time
    (each field's types, lengths and bounds over the batch, each distinct model name once) and built with no step
    of Python a label; None when any object is not such a label (then each is parsed alone). The labels
    :func:`_plain_label` builds (a property test).

    >>> _plain_labels([{"event_id": "e1", "label": True, "ts": 5}, {"ts": 6, "label": 3, "event_id": "e2"}], 0, 9)
    [Label(event_id='e1', label=True, ts=5, model=None), Label(event_id='e2', label=3, ts=6, model=None)]
    >>> _plain_labels([{"event_id": "e1", "label": True, "ts": 5}, {"event_id": "e2", "label": 1.5, "ts": 6}], 0, 9)
    """
    if not datas or set(map(type, datas)) != {dict} or not all(map(_LABEL_FIELDS.issuperset, datas)):
        return None
    get = dict.get
    ids, ys = list(map(get, datas, repeat("event_id"))), list(map(get, datas, repeat("label")))
    times, models = list(map(get, datas, repeat("ts"))), list(map(get, datas, repeat("model")))
    if (
        set(map(type, ids)) != {str}
        or min(map(len, ids)) < 1
        or not max(map(len, ids)) <= MAX_LABEL_EVENT_ID
        or set(map(type, times)) != {int}
        or not max(low, 0) <= min(times)
        or not max(times) <= min(high, MAX_TS_MS)
        or not (kinds := set(map(type, ys))) <= _PLAIN_LABELS
        or not set(map(type, models)) <= _PLAIN_MODELS
    ):
        return None
    ints = ys if kinds == {int} else [y for y in ys if type(y) is int]
    if ints and (min(ints) < -_MAX_INT or max(ints) > _MAX_INT):
        return None
    if not all(name is None or _MODEL_NAME.fullmatch(name) for name in set(models)):
        return None
    labels = list(map(_new, repeat(Label, len(datas))))
    columns = zip(ids, ys, times, models, strict=True)
    fields = [{"event_id": e, "label": y, "ts": t, "model": m} for e, y, t, m in columns]
    # each slot set through its descriptor (object.__setattr__ looks it up by name, for each label)
    _drain(map(_SET_DICT, labels, fields))
    _drain(map(_SET_FIELDS_SET, labels, map(set, datas)))
    _drain(map(_SET_EXTRA, labels, repeat(None)))
    _drain(map(_SET_PRIVATE, labels, repeat(None)))
    return labels


def parse_labels(
    raws: list[bytes | None], max_bytes: int = 65_536, ts_bounds: tuple[int, int] = ANY_TS
) -> list[Label | Exception]:
    """:func:`parse_label` of each message, or the exception it raises (returned, not raised).

    A message that orjson reads as an object of the label's fields only, with a bool, string or integer label and
    an integer ``ts``, is built from that object: at once when every field is already what the label holds
    (:func:`_plain_label`; the usual batch, every message such a label, a column at a time: :func:`_plain_labels`),
    else validated by pydantic's Python mode (half the cost of its JSON mode); every other message, and any that
    this validation refuses, goes through :func:`parse_label`, which says why. The same labels either way (a
    property test).

    >>> ok, bad = parse_labels([b'{"event_id": "e1", "label": true, "ts": 5}', b'{"event_id": "e1"}'])
    >>> ok, bad.error_class
    (Label(event_id='e1', label=True, ts=5, model=None), 'ValidationError')
    """
    validate, low, high = Label.__pydantic_validator__.validate_python, *ts_bounds  # model_validate, less its wrapper
    datas = _loaded(raws, max_bytes)
    plain = _plain_labels(datas, low, high)
    if plain is not None:
        return plain  # type: ignore[return-value]
    out: list[Label | Exception] = []
    for raw, data in zip(raws, datas, strict=True):
        if type(data) is dict and (label := _plain_label(data, low, high)) is not None:
            out.append(label)
            continue
        if (
            type(data) is dict
            and data.keys() <= _LABEL_FIELDS
            and type(data.get("label")) in _PLAIN_LABELS
            and type(data.get("ts")) is int
        ):
            try:
                label = validate(data)
            except ValidationError:
                pass
            else:
                if low <= label.ts <= high:
                    out.append(label)
                    continue
        try:
            out.append(parse_label(raw, max_bytes, ts_bounds))
        except Exception as exc:  # noqa: BLE001 - returned: the caller dead-letters that message alone
            out.append(exc)
    return out


def dumps(record: BaseModel | dict[str, Any]) -> bytes:
    """Serialize a record for a topic."""
    if isinstance(record, BaseModel):
        return record.model_dump_json().encode()
    return json.dumps(record, separators=(",", ":")).encode()
