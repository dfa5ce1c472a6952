"""The offline scikit-learn model as a challenger: registered in shadow, scored in the champion's class space."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftline.contract import keys
from driftline.contract.signing import Keyring
from driftline.models.champion import OfflineChallenger, as_challenger, label_loss
from driftline.models.learner import OnlineLearner
from driftline.models.registry import ModelRegistry
from driftline.offline.export import CHOSEN_MODEL, OnlineArtifact, sign_manifest
from driftline.offline.framing import TrainingPlan, draft_card
from driftline.offline.register import register_challenger_dir
from driftline.offline.skops_model import load_model
from driftline.offline.train import train_frame
from tests.harness import WorkerProcess, publish, read_until

pytestmark = pytest.mark.integration


def fraud_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    return pd.DataFrame(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "kind": rng.choice(["red", "blue"], n),
            "outcome": np.where(x[:, 0] + x[:, 1] > 0, "fraud", "ok"),
        }
    )


def trained_run(tmp_path: Path, keyring: Keyring) -> Path:
    """An offline run (``driftline offline train``'s output, signed with ``keyring``) on :func:`fraud_frame`,
    positive class 'fraud'."""
    df = fraud_frame(600)
    card = dataclasses.replace(draft_card(df, "outcome"), positive_class="fraud", training=TrainingPlan(bootstrap=100))
    out = tmp_path / "run"
    train_frame(df, card, out)
    sign_manifest(out, keyring)
    return out


def test_offline_model_registered_as_challenger_scores_in_the_same_class_space_as_the_river_champion(
    tmp_path, redis_client
):
    registry = ModelRegistry(redis_client, b"key", prefix="cc:")
    out = trained_run(tmp_path, registry.keyring)

    version = register_challenger_dir(out, registry, "fraud")
    assert registry.challenger_version("fraud") == version.version and registry.current_version("fraud") is None

    meta, model = registry.load("fraud", version.version)
    challenger = as_challenger(model, meta.task, meta.data_summary.get("positive_class"))
    assert isinstance(challenger, OfflineChallenger)
    online = OnlineArtifact.load(out)
    rows = [online.schema.prepare({"a": 2.0, "b": 1.0, "kind": "red"}), online.schema.prepare({"a": -2.0, "b": -1.0})]
    shadow = challenger.score_batch(rows)
    champion = [online.model.predict_proba_one(r) for r in rows]
    assert [s.prediction for s in shadow] == [True, False], "True means outcome == positive class 'fraud'"
    assert all(set(s.probabilities) == {"True", "False"} for s in shadow)
    assert all(set(map(str, p)) == {"True", "False"} for p in champion), "the River champion's classes"
    assert label_loss("binary", True, shadow[0]) < label_loss("binary", True, shadow[1])
    assert type(load_model(out / CHOSEN_MODEL)).__name__ == "TrainedModel"


def test_an_offline_model_promoted_from_challenger_serves_every_event_and_its_labels_are_joined_once(
    tmp_path, redis_client, settings
):
    """Promoting the scikit-learn challenger makes it the served model: every event is scored by it, every label
    is joined once into the prequential metrics, and the learner registers no new version (it cannot learn)."""
    settings = settings.model_copy(update={"snapshot_every_labels": 100})
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    version = register_challenger_dir(trained_run(tmp_path, registry.keyring), registry, settings.model_name)
    registry.promote(settings.model_name, version.version)
    registry.set_challenger(settings.model_name, None)
    rows = fraud_frame(1200, seed=1).to_dict("records")
    events = [
        (
            None,
            json.dumps(
                {"event_id": f"e{i}", "ts": 1_700_000_000_000 + i, "features": {k: r[k] for k in ("a", "b", "kind")}}
            ).encode(),
        )
        for i, r in enumerate(rows)
    ]
    labels = [
        (None, json.dumps({"event_id": f"e{i}", "label": r["outcome"], "ts": 1_700_000_000_000 + i}).encode())
        for i, r in enumerate(rows)
    ]
    checkpoint = keys.learner(settings.redis_prefix, settings.model_name)

    def learned() -> int:
        return int(redis_client.hget(checkpoint, "learned") or 0)

    for start, end in ((0, 1000), (1000, len(rows))):  # a second worker resumes from the first one's checkpoint
        worker = WorkerProcess(settings, tmp_path).start()
        try:
            asyncio.run(publish(settings, "events", events[start:end]))
            asyncio.run(read_until(settings, ["predictions"], lambda seen, end=end: len(seen["predictions"]) >= end))
            asyncio.run(publish(settings, "labels", labels[start:end]))
            deadline = time.monotonic() + 120
            while learned() < end:
                assert time.monotonic() < deadline, f"{learned()} of {end} labels joined:\n{worker.log()[-2000:]}"
                time.sleep(0.3)
        finally:
            worker.stop()
        stored = OnlineLearner.restore(
            redis_client.hget(checkpoint, "checkpoint"),
            hmac_key=settings.keyring(),
            purpose=f"learner:{settings.model_name}",
        )
        assert stored.model is None, "the unchanging model is left out of the checkpoint (the registry has it)"
    out = asyncio.run(
        read_until(
            settings, ["predictions", "dead-letter"], lambda seen: len(seen["predictions"]) >= len(rows), timeout=10
        )
    )
    predictions = [json.loads(r.value) for r in out["predictions"]]
    assert len({p["event_id"] for p in predictions}) == len(rows) and out["dead-letter"] == []
    assert {p["model_version"] for p in predictions} == {version.version}
    accuracy = np.mean(
        [
            p["prediction"] == (r["outcome"] == "fraud")
            for p, r in zip(sorted(predictions, key=lambda p: int(p["event_id"][1:])), rows, strict=True)
        ]
    )
    assert accuracy > 0.9, "the offline model's own predictions were served"
    assert int(redis_client.hget(checkpoint, "learned")) == len(rows), "every label joined once"
    assert registry.current_version(settings.model_name) == version.version
    assert [v.version for v in registry.versions(settings.model_name)] == [version.version], "no snapshot"
