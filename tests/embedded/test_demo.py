"""`driftline demo --events F`: a fresh model's schema is the one most events agree on, so a poisoned event among
the first ones is dead-lettered instead of turning a numeric feature categorical (and being scored)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from driftline.embedded.demo import infer_stream_schema
from driftline.models.bootstrap import synthetic_stream

VALID, PER_KIND = 3000, 30


def malformed_events() -> list[bytes]:
    """300 events the worker must dead-letter: ten kinds, 30 of each, every one with its own id."""
    good = {"age": 40.0, "salary": 50_000.0, "commission": 0.0}
    kinds = [
        lambda i: {"event_id": f"bad-{i}", "ts": 1, "features": {**good, "salary": "lots"}},
        lambda i: f'{{"event_id": "bad-{i}", "ts": 1, "features": {{'.encode(),  # not JSON
        lambda i: {"ts": 1, "features": good},  # no event_id
        lambda i: {"event_id": f"bad-{i}", "ts": 1},  # no features
        lambda i: {"event_id": f"bad-{i}", "ts": 1, "features": {**good, "salary": [1, 2]}},  # nested
        lambda i: {"event_id": f"bad-{i}", "ts": -5, "features": good},  # negative time
        lambda i: {"event_id": f"bad-{i}", "ts": 1, "features": [1, 2]},  # features not an object
        lambda i: {"event_id": "", "ts": 1, "features": good},  # empty id
        lambda i: f'{{"event_id": "bad-{i}", "ts": 1, "features": {{"salary": NaN}}}}'.encode(),
        lambda i: {"event_id": f"bad-{i}", "ts": "yesterday", "features": good},  # no date
    ]
    out = []
    for k, make in enumerate(kinds):
        for j in range(PER_KIND):
            value = make(k * PER_KIND + j)
            out.append(value if isinstance(value, bytes) else json.dumps(value).encode())
    return out


def mixed_file(path: Path) -> Path:
    """3,000 valid events and 300 malformed ones, exactly one ``"salary": "lots"`` among the first 1,000."""
    valid = [json.dumps(event).encode() for event, _ in synthetic_stream(VALID)]
    bad = malformed_events()
    lots, others = bad[:PER_KIND], bad[PER_KIND:]
    rng = random.Random(13)
    rest = valid[1000:] + lots[1:] + others
    rng.shuffle(rest)
    head = valid[:1000]
    head.insert(rng.randrange(1, 1000), lots[0])
    path.write_bytes(b"\n".join(head + rest) + b"\n")
    return path


def test_one_poisoned_event_does_not_make_a_numeric_feature_categorical(tmp_path: Path):
    lines = mixed_file(tmp_path / "events.jsonl").read_bytes().splitlines()
    assert sum(b'"lots"' in line for line in lines[:1001]) == 1
    inferred = infer_stream_schema(lines)
    assert inferred.schema.kinds["salary"] == "numeric"
    assert inferred.conflicts == {"salary": 1}
    assert "salary numeric (999 numbers, 1 text: conflicting rows are rejected)" in inferred.describe()


@pytest.mark.integration
def test_demo_scores_every_valid_event_and_dead_letters_every_malformed_one(tmp_path: Path):
    events = mixed_file(tmp_path / "events.jsonl")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env["DRIFTLINE_STATE_DIR"] = str(tmp_path / "state")
    run = subprocess.run(
        [sys.executable, "-m", "driftline", "demo", "--events", str(events), "--json", "--timeout", "240"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=420,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert (summary["events"], summary["scored"], summary["dead_lettered"]) == (3300, 3000, 300)
    assert summary["duplicate_predictions"] == 0
    assert "salary numeric (999 numbers, 1 text: conflicting rows are rejected)" in run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl", "state"]  # nothing in the current folder
