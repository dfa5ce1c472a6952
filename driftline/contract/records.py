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
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime
from typing import Annotated, Any, Literal

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
)

#: Model names: letters, digits, ``.``, ``_`` and ``-``, at most 128, starting with a letter or digit (they are part
#: of Redis keys and Prometheus labels).
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

Stage = Literal["deserialize", "validate", "score", "learn", "join", "monitor"]

AlertKind = Literal["data_drift", "prediction_drift", "concept_drift", "data_quality", "performance", "model_integrity"]
Severity = Literal["info", "warning", "critical"]

# Dead-letter headers (Kafka Connect style: original value untouched, the reason in headers).
DLQ_SOURCE_TOPIC = "dlq.source.topic"
DLQ_SOURCE_PARTITION = "dlq.source.partition"
DLQ_SOURCE_OFFSET = "dlq.source.offset"
DLQ_STAGE = "dlq.stage"
DLQ_ERROR_CLASS = "dlq.error.class"
DLQ_ERROR_MESSAGE = "dlq.error.message"
#: Set when the dead letter carries only the head of the original value: the original size in bytes.
DLQ_VALUE_TRUNCATED = "dlq.value.truncated"


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
        if not math.isfinite(value) or value < 0:
            raise ValueError("ts must be a finite, non-negative epoch-ms")
        return int(value)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError("ISO-8601 ts needs a timezone")
        return int(parsed.timestamp() * 1000)
    raise ValueError(f"ts must be epoch-ms or ISO-8601, got {type(value).__name__}")


def now_ms() -> int:
    return int(time.time() * 1000)


Timestamp = Annotated[int, BeforeValidator(epoch_ms)]


class Event(BaseModel):
    """An event to score."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    event_id: str = Field(min_length=1, max_length=256)
    ts: Timestamp
    model: str | None = Field(None, min_length=1, max_length=128)
    #: Scalars only, checked in pydantic's core (a Python validator here cost ~8 µs an event).
    features: dict[str, StrictBool | StrictInt | StrictFloat | StrictStr | None]


class Label(BaseModel):
    """The true outcome of an event, possibly long after it."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    event_id: str = Field(min_length=1, max_length=256)
    label: float | int | str | bool
    ts: Timestamp
    model: str | None = Field(None, min_length=1, max_length=128)


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


def _parse(model: type[BaseModel], raw: bytes | None, max_bytes: int) -> Any:
    if raw is None:
        raise RecordError("deserialize", "EmptyMessage", "message has no value")
    if len(raw) > max_bytes:
        raise RecordError("validate", "PayloadTooLarge", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] in ("json_invalid", "json_type"):
            raise RecordError("deserialize", "JSONDecodeError", first["msg"].removeprefix("Invalid JSON: ")) from exc
        loc = first["loc"]
        if len(loc) >= 2 and loc[0] == "features":
            where = f"features.{loc[1]}"
            if any(e["type"] == "finite_number" for e in exc.errors()):
                message = "NaN and infinity are not allowed"
            else:
                message = "expects a number, string, bool or null (nested values are not allowed)"
        else:
            where = ".".join(str(p) for p in loc) or "record"
            message = first["msg"].removeprefix("Value error, ")
        raise RecordError("validate", "ValidationError", f"{where}: {message}") from exc


def parse_event(raw: bytes | None, max_bytes: int = 65_536) -> Event:
    """Parse and validate one ``events`` message."""
    return _parse(Event, raw, max_bytes)


def parse_label(raw: bytes | None, max_bytes: int = 65_536) -> Label:
    """Parse and validate one ``labels`` message."""
    return _parse(Label, raw, max_bytes)


def dumps(record: BaseModel | dict[str, Any]) -> bytes:
    """Serialize a record for a topic."""
    if isinstance(record, BaseModel):
        return record.model_dump_json().encode()
    return json.dumps(record, separators=(",", ":")).encode()
