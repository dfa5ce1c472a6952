"""Concept drift -> retrain: the alert's action queues a request; `driftline offline retrain` trains on the
events and labels the stream joined, and registers a candidate version without promoting it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.contract import keys
from driftline.contract.labelled import read_rows
from driftline.models.bootstrap import synthetic_stream
from driftline.models.registry import ModelRegistry
from tests.harness import WorkerProcess, publish, settings_env

pytestmark = pytest.mark.integration


def test_concept_drift_requests_a_retrain_that_the_cli_serves_with_a_candidate_version(
    settings, redis_client, tmp_path
):
    settings = settings.model_copy(
        update={"join_grace_seconds": 5, "snapshot_every_labels": 100_000, "snapshot_every_seconds": 600}
    )
    pairs = list(synthetic_stream(8000, drift_at=4000, seed=5))
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish(settings, "events", ((None, json.dumps(e).encode()) for e, _ in pairs)))
        labels = [json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"]}).encode() for e, y in pairs]
        asyncio.run(publish(settings, "labels", ((settings.model_name.encode(), v) for v in labels)))
        learned_key = keys.learner(settings.redis_prefix, settings.model_name)
        deadline = time.monotonic() + 120
        while int(redis_client.hget(learned_key, "learned") or 0) < len(pairs) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        worker.stop()
    assert int(redis_client.hget(learned_key, "learned")) == len(pairs)
    assert len(read_rows(redis_client, keys.labelled(settings.redis_prefix, settings.model_name))) == len(pairs), (
        "every learned label is kept once for retraining"
    )
    requests = [
        json.loads(r) for r in redis_client.lrange(keys.retrain(settings.redis_prefix, settings.model_name), 0, -1)
    ]
    assert requests and requests[0]["kind"] == "concept_drift", "the concept-drift alert requested a retrain"

    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    before = registry.current_version(settings.model_name)
    result = CliRunner().invoke(
        main, ["offline", "retrain", "--out", str(tmp_path / "candidate")], env=settings_env(settings)
    )
    assert result.exit_code == 0, result.output
    candidate = registry.versions(settings.model_name)[-1]
    assert candidate.version > before and "retrain candidate" in candidate.note and "concept_drift" in candidate.note
    assert registry.current_version(settings.model_name) == before, "a candidate is not promoted"
    assert f"models challenge {settings.model_name}@{candidate.version}" in result.output
    assert (tmp_path / "candidate" / "metrics.json").exists()
