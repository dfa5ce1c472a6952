"""docs/contract/ holds the JSON Schemas the pydantic models generate today, and a producer in another language
that validates against them sends what the worker accepts."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.contract.records import RecordError, parse_event, parse_label
from driftline.contract.schemas import stale_schemas, topic_schemas

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "contract"


def test_the_schemas_in_docs_are_the_ones_the_models_generate():
    assert stale_schemas(DOCS) == [], "run `driftline contract export` and commit docs/contract/"
    assert sorted(p.name for p in DOCS.glob("*.schema.json")) == sorted(f"{t}.schema.json" for t in topic_schemas())


def test_export_writes_them_and_check_finds_a_stale_file(tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(main, ["contract", "export", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {p.name: p.read_text() for p in DOCS.iterdir()}
    assert runner.invoke(main, ["contract", "export", "--out", str(tmp_path), "--check"]).exit_code == 0
    (tmp_path / "labels.schema.json").write_text("{}\n")
    stale = runner.invoke(main, ["contract", "export", "--out", str(tmp_path), "--check"])
    assert stale.exit_code == 1 and "labels.schema.json" in stale.output


EVENTS = [
    ({"event_id": "e1", "ts": 1767225600000, "features": {"x": 1.5, "c": "a", "b": True, "n": None}}, True),
    ({"event_id": "e2", "ts": "2026-01-01T00:00:00Z", "features": {}, "model": "fraud-v2"}, True),
    ({"event_id": "e3", "ts": 1, "features": {"x": [1, 2]}}, False),
    ({"event_id": "", "ts": 1, "features": {}}, False),
    ({"event_id": "e5", "features": {}}, False),
    ({"event_id": "e6", "ts": -1, "features": {}}, False),
    ({"event_id": "e7", "ts": 1, "features": {}, "model": "no spaces"}, False),
]


@pytest.mark.parametrize(("event", "valid"), EVENTS)
def test_the_events_schema_accepts_what_the_worker_accepts(event: dict, valid: bool):
    schema = topic_schemas()["events"]
    checker = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    assert checker.is_valid(event) == valid
    try:
        parse_event(json.dumps(event).encode())
        accepted = True
    except RecordError:
        accepted = False
    assert accepted == valid


def test_the_labels_schema_accepts_a_label_and_refuses_a_nested_one():
    checker = jsonschema.Draft202012Validator(topic_schemas()["labels"])
    good = {"event_id": "e1", "label": "fraud", "ts": 5}
    assert checker.is_valid(good) and parse_label(json.dumps(good).encode()).label == "fraud"
    assert not checker.is_valid({"event_id": "e1", "label": [1], "ts": 5})
