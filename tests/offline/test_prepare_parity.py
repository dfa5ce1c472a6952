"""Issue item 4: a feature prepared one way in training is prepared the same way in the stream.

A small model is trained offline on data with a number-coded category, a text category, a bool and missing
values (the chosen model is the linear one; the River model is exported whatever is chosen); then a raw
event goes through the stream's path (schema.prepare + predict_proba_one on the exported
River model) and through the offline path (column-wise preparation of the same raw row), and both agree.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from driftline.models.features import FeatureSchema
from driftline.models.registry import ModelRegistry
from driftline.offline.export import OnlineArtifact
from driftline.offline.framing import TrainingPlan, draft_card
from driftline.offline.prepare import prepared_rows
from driftline.offline.register import register_dir
from driftline.offline.skops_model import load_model
from driftline.offline.train import train_frame
from tests.harness import WorkerProcess, publish, read_until

NOW_MS = int(time.time() * 1000)
EVENTS = [
    {"mean radius": 14.2, "mean texture": None, "site": 2, "clinic": "north", "referred": True},
    {"mean radius": None, "mean texture": 19.5, "site": 3, "clinic": None, "referred": False},
    {"mean radius": 11.0, "mean texture": 25.0, "site": 99, "clinic": "never-seen", "referred": True},
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(0)
    df = load_breast_cancer(as_frame=True).frame[["mean radius", "mean texture", "target"]].copy()
    n = len(df)
    df["site"] = rng.integers(1, 4, n)  # number-coded category
    df["clinic"] = pd.Series(rng.choice(["north", "south"], n)).mask(rng.random(n) < 0.1)
    df["referred"] = rng.random(n) < 0.4
    df.loc[rng.random(n) < 0.1, "mean texture"] = np.nan
    card = dataclasses.replace(
        draft_card(df, "target"),
        categorical=("site",),
        training=TrainingPlan(candidates=("linear",), search_rows=400, bootstrap=100),
    )
    card = dataclasses.replace(card, split=dataclasses.replace(card.split, folds=3))
    out = tmp_path_factory.mktemp("parity") / "run"
    train_frame(df, card, out)
    return out


def test_stream_path_and_offline_path_give_the_same_scores_for_raw_events(trained) -> None:
    """schema.prepare + predict_proba_one (stream) equals the offline column-wise preparation + the same model,
    for events with a missing number, a missing category, a number-coded category and an unseen category."""
    meta = json.loads((trained / "online_model.json").read_text())
    schema = FeatureSchema(meta["schema"])
    assert schema.kinds == {
        "mean radius": "numeric",
        "mean texture": "numeric",
        "site": "categorical",
        "clinic": "categorical",
        "referred": "numeric",
    }
    with open(trained / "river_model.pkl", "rb") as handle:
        stream_model = pickle.load(handle)
    stream_scores = [stream_model.predict_proba_one(schema.prepare(event)) for event in EVENTS]
    offline_scores = OnlineArtifact.load(trained).predict_proba(pd.DataFrame(EVENTS))
    assert offline_scores == stream_scores
    assert len({round(s[True], 12) for s in stream_scores}) == 3  # the three events really differ


def test_the_offline_scikit_learn_model_prepares_raw_rows_as_the_stream_does(trained) -> None:
    """The first step of model.skops turns raw rows into exactly what schema.prepare makes of the events
    (site 2 -> '2', True -> 1.0, missing dropped)."""
    model = load_model(trained / "model.skops")
    schema = FeatureSchema(json.loads((trained / "online_model.json").read_text())["schema"])
    assert model.name == "linear"
    preparer = model.estimator.named_steps["prepare"].named_steps["prepare"]
    prepared = prepared_rows(preparer.transform(pd.DataFrame(EVENTS)))
    assert prepared == [schema.prepare(event) for event in EVENTS]
    assert prepared[0] == {"mean radius": 14.2, "site": "2", "clinic": "north", "referred": 1.0}


def test_the_reference_profile_describes_the_features_as_the_stream_prepares_them(trained) -> None:
    """reference_profile.json has the online schema's features, string categories and a score profile."""
    from driftline.models.reference import ReferenceProfile

    profile = ReferenceProfile.from_json((trained / "reference_profile.json").read_text())
    meta = json.loads((trained / "online_model.json").read_text())
    assert profile.schema().kinds == meta["schema"]
    assert set(profile.features["site"].frequencies) == {"1", "2", "3"}
    assert 0.05 < profile.features["mean texture"].missing_rate < 0.15
    assert profile.prediction is not None and 0.0 <= profile.prediction.minimum <= profile.prediction.maximum <= 1.0


def float_coded_run(out: Path) -> Path:
    """Train on a float-coded category (site 1.0, 2.0, 3.0, as a CSV column with a blank cell reads)."""
    rng = np.random.default_rng(1)
    n = 300
    site = rng.integers(1, 4, n).astype(float)
    df = pd.DataFrame({"x": rng.normal(size=n), "site": site, "y": (site == 2) ^ (rng.random(n) < 0.1)})
    card = dataclasses.replace(
        draft_card(df, "y"),
        categorical=("site",),
        training=TrainingPlan(candidates=("linear",), search_rows=300, bootstrap=50),
    )
    card = dataclasses.replace(card, split=dataclasses.replace(card.split, folds=3))
    train_frame(df, card, out)
    return out


def test_a_float_coded_category_is_one_category_in_training_and_in_the_stream(tmp_path) -> None:
    """Events that send 2.0, 2 or "2" meet the category training saw, not an unseen one."""
    run = float_coded_run(tmp_path / "run")
    schema = FeatureSchema(json.loads((run / "online_model.json").read_text())["schema"])
    with open(run / "river_model.pkl", "rb") as handle:
        stream_model = pickle.load(handle)

    def stream(site_value):
        return stream_model.predict_proba_one(schema.prepare({"x": 0.0, "site": site_value}))

    assert {schema.prepare({"site": v})["site"] for v in (2.0, 2, "2")} == {"2"}
    assert stream(2.0) == stream(2) == stream("2")
    assert stream(2.0) != stream(99.0)  # a category training saw scores apart from an unseen one
    offline = OnlineArtifact.load(run).predict_proba(pd.DataFrame({"x": [0.0], "site": [2.0]}))
    assert offline == [stream(2.0)]


@pytest.mark.integration
def test_a_float_coded_category_is_one_category_for_a_live_worker(tmp_path, redis_client, settings) -> None:
    """The same model registered and served by a real worker (Tansu, redis-server): the events with site 2.0, 2
    and "2" get the offline model's probability for site 2.0, and an unseen site gets another."""
    run = float_coded_run(tmp_path / "run")
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    register_dir(run, registry, settings.model_name, trust_unsigned=True)  # signing is not what this test is about
    sites = [2.0, 2, "2", 99.0]
    events = [
        (None, json.dumps({"event_id": f"e{i}", "ts": NOW_MS, "features": {"x": 0.0, "site": v}}).encode())
        for i, v in enumerate(sites)
    ]
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish(settings, "events", events))
        out = asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= len(sites)))
    finally:
        worker.stop()
    score = {p["event_id"]: p["score"] for p in (json.loads(r.value) for r in out["predictions"])}
    offline = OnlineArtifact.load(run).predict_proba(pd.DataFrame({"x": [0.0], "site": [2.0]}))[0][True]
    assert score["e0"] == score["e1"] == score["e2"] == pytest.approx(offline, rel=1e-9)
    assert score["e3"] != pytest.approx(score["e0"], rel=1e-6)
