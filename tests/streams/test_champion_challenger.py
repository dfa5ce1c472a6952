"""Champion/challenger on a running worker: the challenger scores every event in shadow, both are judged on
the same joined labels, `driftline models compare` shows the paired test, and the policy promotes the winner.
A River challenger learns the same labels in shadow, exactly once, and its snapshots replace it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.contract import keys
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.champion import load_comparison
from driftline.models.learner import OnlineLearner
from driftline.models.registry import ModelRegistry
from driftline.models.specs import build_model
from tests.harness import WorkerProcess, publish, settings_env

pytestmark = pytest.mark.integration


def untrained_champion_trained_challenger(settings, redis_client) -> ModelRegistry:
    """v1 (untrained) serves, v2 (trained on the bootstrap stream) is its challenger."""
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    trained, schema, task = bootstrap_model(samples=2000)
    registry.register(settings.model_name, build_model(schema, task), schema=schema, task=task, note="untrained")
    registry.register(settings.model_name, trained, schema=schema, task=task, promote=False, note="trained")
    registry.set_challenger(settings.model_name, 2)
    return registry


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
    registry = untrained_champion_trained_challenger(settings, redis_client)

    pairs = list(synthetic_stream(3000, drift_at=3000, seed=11))
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish(settings, "events", ((None, json.dumps(e).encode()) for e, _ in pairs)))
        labels = [json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"]}).encode() for e, y in pairs]
        asyncio.run(publish(settings, "labels", ((settings.model_name.encode(), v) for v in labels)))
        deadline = time.monotonic() + 120
        while registry.current_version(settings.model_name) == 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        comparison = load_comparison(redis_client, settings.redis_prefix, settings.model_name)
    finally:
        worker.stop()
    assert comparison is not None and comparison["n"] >= 300, "losses paired on the same joined labels"
    assert comparison["champion_version"] == 1 and comparison["challenger_version"] == 2
    assert comparison["challenger_loss"] < comparison["champion_loss"] and comparison["winner"] == "challenger"
    promoted = registry.get(settings.model_name, registry.history(settings.model_name)[-1])
    assert promoted.version == 2 or (promoted.parent == 2 and promoted.data_summary["challenger_root"] == 2), (
        "the policy promoted the winner, with what it learned in shadow since it was set"
    )
    assert registry.challenger_version(settings.model_name) is None

    result = CliRunner().invoke(main, ["models", "compare", settings.model_name, "--json"], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["winner"] == "challenger"


def _wait(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_the_paired_comparison_is_checkpointed_with_the_learner_and_continues_after_a_restart(
    settings, redis_client, tmp_path
):
    """Pairs counted before a restart are neither lost nor counted again: ``seen`` after the restart is the
    pairs before it plus the labels learned after it."""
    # a snapshot every 1,000 labels however fast they are learned (not at most one a second)
    update = {"reload_check_seconds": 0.2, "join_grace_seconds": 5, "snapshot_min_interval_ms": 0}
    settings = settings.model_copy(update=update)
    untrained_champion_trained_challenger(settings, redis_client)
    pairs = list(synthetic_stream(4000, drift_at=10_000, seed=5))
    main_pairs, warm = pairs[:3000], pairs[3000:]

    def events(chunk):
        return ((None, json.dumps(e).encode()) for e, _ in chunk)

    def labels(chunk):
        key = settings.model_name.encode()
        return ((key, json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"]}).encode()) for e, y in chunk)

    def seen() -> int:
        comparison = load_comparison(redis_client, settings.redis_prefix, settings.model_name)
        return comparison["seen"] if comparison else 0

    def learned() -> int:
        return int(redis_client.hget(keys.learner(settings.redis_prefix, settings.model_name), "learned") or 0)

    def learned_in_shadow() -> int:
        blob = redis_client.hget(keys.learner(settings.redis_prefix, settings.model_name), "challenger_checkpoint")
        return OnlineLearner.restore(
            blob, hmac_key=settings.keyring(), purpose=f"challenger:{settings.model_name}"
        ).learned

    worker = WorkerProcess(settings, tmp_path).start()
    try:
        for start in range(0, len(warm), 100):  # until the challenger scores in shadow (it loads after start)
            asyncio.run(publish(settings, "events", events(warm[start : start + 100])))
            asyncio.run(publish(settings, "labels", labels(warm[start : start + 100])))
            _wait(lambda end=start + 100: learned() == end)
            if seen():
                break
        assert seen(), "the challenger scored in shadow"
        warmed = learned()
        asyncio.run(publish(settings, "events", events(main_pairs)))
        asyncio.run(publish(settings, "labels", labels(main_pairs[:1500])))
        _wait(lambda: learned() == warmed + 1500)
    finally:
        worker.stop()
    before = seen()
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish(settings, "labels", labels(main_pairs[1500:])))
        _wait(lambda: learned() == warmed + 3000)
        _wait(lambda: seen() >= before + 1500, timeout=30)
    finally:
        worker.stop()
    stored = redis_client.hget(keys.learner(settings.redis_prefix, settings.model_name), "comparison")
    assert stored is not None and json.loads(stored)["version"] == 2
    assert before >= 1500, "every label of an event scored in shadow was paired before the restart"
    assert seen() == before + 1500, "the restarted learner continued the comparison: nothing lost, nothing twice"
    assert learned_in_shadow() == learned(), "the River challenger learned every label the champion did, once"
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    lineage = [m for m in registry.versions(settings.model_name) if m.data_summary.get("challenger_root") == 2]
    assert len(lineage) >= 2, "the challenger's learning became versions (every 1,000 labels by default)"
    assert registry.challenger_version(settings.model_name) == lineage[-1].version, "its latest snapshot is served"
    assert [m.parent for m in lineage] == [2] + [m.version for m in lineage[:-1]]
    assert 2000 <= lineage[-1].data_summary["labels_learned"] <= learned()
    assert 0 < lineage[-1].metrics["accuracy"] <= 1, "its prequential metrics, from its own shadow predictions"
    assert registry.current_version(settings.model_name) not in {m.version for m in lineage}, "never promoted"
