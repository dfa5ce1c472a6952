"""JSON Schemas of the topic records, generated from the pydantic models, for producers and consumers written in
other languages. ``driftline contract export`` writes them to ``docs/contract/``; a test regenerates and compares.

``events`` and ``labels`` are what the worker accepts (validation schemas: ``ts`` may be epoch-ms or ISO-8601);
``predictions``, ``review`` and ``alerts`` are what it publishes (serialization schemas). A ``dead-letter``
message keeps the original bytes; its schema describes the headers that say why.

>>> sorted(topic_schemas())
['alerts', 'dead-letter', 'events', 'labels', 'predictions', 'review']
>>> topic_schemas()["events"]["required"]
['event_id', 'ts', 'features']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel

from driftline.contract import records

DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: topic -> (record model, the side of the worker it is on)
TOPIC_RECORDS: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
    "events": (records.Event, "validation"),
    "labels": (records.Label, "validation"),
    "predictions": (records.Prediction, "serialization"),
    "review": (records.Prediction, "serialization"),
    "alerts": (records.Alert, "serialization"),
}

DEAD_LETTER_HEADERS = {
    records.DLQ_SOURCE_TOPIC: "topic the message was read from",
    records.DLQ_SOURCE_PARTITION: "its partition (decimal text)",
    records.DLQ_SOURCE_OFFSET: "its offset (decimal text)",
    records.DLQ_STAGE: "stage that rejected it: " + ", ".join(get_args(records.Stage)),
    records.DLQ_ERROR_CLASS: "class of the error, e.g. ValidationError",
    records.DLQ_ERROR_MESSAGE: "the reason, one line",
    records.DLQ_VALUE_TRUNCATED: "set when the value kept is only the head of the original: its size in bytes",
}


def topic_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each topic's records, by topic name (without the deployment's prefix)."""
    schemas = {}
    for topic, (model, mode) in TOPIC_RECORDS.items():
        schema = model.model_json_schema(mode=mode)
        schemas[topic] = {"$schema": DIALECT, "$id": f"driftline/{topic}.schema.json", **schema}
    schemas["dead-letter"] = {
        "$schema": DIALECT,
        "$id": "driftline/dead-letter.schema.json",
        "title": "DeadLetterHeaders",
        "description": "Headers of a dead-letter message (UTF-8 text values); the message's key and value are the "
        "original ones, untouched (cut to their head when too large).",
        "type": "object",
        "properties": {name: {"type": "string", "description": text} for name, text in DEAD_LETTER_HEADERS.items()},
        "required": [name for name in DEAD_LETTER_HEADERS if name != records.DLQ_VALUE_TRUNCATED],
    }
    return schemas


def render(schema: dict[str, Any]) -> str:
    """A schema as the file holds it (stable key order, 2-space indent, final newline)."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write ``TOPIC.schema.json`` for every topic into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for topic, schema in topic_schemas().items():
        path = directory / f"{topic}.schema.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(directory: Path) -> list[str]:
    """Names of the schema files in ``directory`` that are missing or differ from the models (empty: current)."""
    stale = []
    for topic, schema in topic_schemas().items():
        path = directory / f"{topic}.schema.json"
        if not path.is_file() or path.read_text(encoding="utf-8") != render(schema):
            stale.append(path.name)
    return stale
