"""The offline scikit-learn model as a challenger: registered in shadow, scored in the champion's class space."""

from __future__ import annotations

import dataclasses

import joblib
import numpy as np
import pandas as pd
import pytest

from models.champion import OfflineChallenger, as_challenger, label_loss
from models.registry import ModelRegistry
from offline.export import CHOSEN_MODEL, OnlineArtifact
from offline.framing import TrainingPlan, draft_card
from offline.register import register_challenger_dir
from offline.train import train_frame

pytestmark = pytest.mark.integration


def test_offline_model_registered_as_challenger_scores_in_the_same_class_space_as_the_river_champion(
    tmp_path, redis_client
):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 2))
    df = pd.DataFrame(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "kind": rng.choice(["red", "blue"], 600),
            "outcome": np.where(x[:, 0] + x[:, 1] > 0, "fraud", "ok"),
        }
    )
    card = dataclasses.replace(draft_card(df, "outcome"), positive_class="fraud", training=TrainingPlan(bootstrap=100))
    out = tmp_path / "run"
    train_frame(df, card, out)

    registry = ModelRegistry(redis_client, b"key", prefix="cc:")
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
    assert type(joblib.load(out / CHOSEN_MODEL)).__name__ == "TrainedModel"
