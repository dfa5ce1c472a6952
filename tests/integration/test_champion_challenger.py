"""Champion/challenger on a running worker: the challenger scores every event in shadow, both are judged on
the same joined labels, `driftline models compare` shows the paired test, and the policy promotes the winner."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner

from driftline.cli import main
from models.bootstrap import bootstrap_model, synthetic_stream
from models.champion import load_comparison
from models.registry import ModelRegistry
from models.specs import build_model
from tests.integration.harness import WorkerProcess, publish, settings_env

pytestmark = pytest.mark.integration


def test_a_better_challenger_scored_in_shadow_wins_the_paired_test_and_is_promoted(settings, redis_client, tmp_path):
    settings = settings.model_copy(
        update={
            "challenger_auto_promote": True,
            "challenger_min_labels": 300,
            "reload_check_seconds": 0.2,
            "join_grace_seconds": 5,
            "snapshot_every_labels": 100_000,
            "snapshot_every_seconds": 600,
        }
    )
    registry = ModelRegistry(redis_client, settings.hmac_key(), prefix=settings.redis_prefix)
    trained, schema, task = bootstrap_model(samples=2000)
    registry.register(settings.model_name, build_model(schema, task), schema=schema, task=task, note="untrained")
    registry.register(settings.model_name, trained, schema=schema, task=task, promote=False, note="trained")
    registry.set_challenger(settings.model_name, 2)

    pairs = list(synthetic_stream(3000, drift_at=3000, seed=11))
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        time.sleep(2)  # the worker loads the champion and its challenger
        asyncio.run(publish(settings, "events", ((None, json.dumps(e).encode()) for e, _ in pairs)))
        labels = [json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"]}).encode() for e, y in pairs]
        asyncio.run(publish(settings, "labels", ((settings.model_name.encode(), v) for v in labels)))
        deadline = time.monotonic() + 120
        while registry.current_version(settings.model_name) != 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        comparison = load_comparison(redis_client, settings.redis_prefix, settings.model_name)
    finally:
        worker.stop()
    assert comparison is not None and comparison["n"] >= 300, "losses paired on the same joined labels"
    assert comparison["champion_version"] == 1 and comparison["challenger_version"] == 2
    assert comparison["challenger_loss"] < comparison["champion_loss"] and comparison["winner"] == "challenger"
    assert registry.history(settings.model_name)[-1] == 2, "the policy promoted the winner"
    assert registry.challenger_version(settings.model_name) is None

    result = CliRunner().invoke(main, ["models", "compare", settings.model_name, "--json"], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["winner"] == "challenger"
