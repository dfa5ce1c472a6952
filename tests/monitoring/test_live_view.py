"""The live report's numbers from real monitors: a drifted categorical and numeric feature come first with their
two distributions, estimated and realised performance with bands, only this model's alerts, strict JSON."""

from __future__ import annotations

import json

import numpy as np

from driftline.models.features import FeatureSchema
from driftline.monitoring.live_view import report_data
from driftline.monitoring.monitor import Monitor, MonitorConfig

SCHEMA = FeatureSchema({"steady": "numeric", "moves": "numeric", "colour": "categorical"})
CONFIG = MonitorConfig(reference_events=1000, cooldown_events=100_000)


def run_monitors() -> tuple[Monitor, Monitor, list]:
    rng = np.random.default_rng(1)
    scoring = Monitor("m", SCHEMA, "binary", None, CONFIG)
    learning = Monitor("m", SCHEMA, "binary", None, CONFIG)
    alerts = []
    for batch in range(24):
        drifted = batch >= 12
        n = 250
        ids = [f"e{batch * n + i:06d}" for i in range(n)]
        rows = [
            {"steady": float(a), "moves": float(b), "colour": c}
            for a, b, c in zip(
                rng.normal(0, 1, n),
                rng.normal(2.5 if drifted else 0, 1, n),
                rng.choice(["red", "blue", "green"], n, p=[0.2, 0.2, 0.6] if drifted else [0.5, 0.3, 0.2]),
                strict=True,
            )
        ]
        p = rng.uniform(0.5, 1.0, n)
        probabilities = [{True: float(x), False: float(1 - x)} for x in p]
        if scoring.prediction_reference_due(1):  # the served version scores the reference inputs, as the worker
            k = len(scoring.reference_inputs or [])
            reference = [{True: float(x), False: float(1 - x)} for x in rng.uniform(0.5, 1.0, k)]
            scoring.set_prediction_reference(1, [True] * k, reference)
        alerts += scoring.observe_events(ids, rows, [True] * n, probabilities, 1, batch * 1000)
        truth = rng.uniform(0, 1, n) < (0.5 if drifted else p)
        alerts += learning.observe_outcomes(ids, truth.tolist(), [True] * n, probabilities, 1, batch * 1000 + 500)
    return scoring, learning, alerts


def test_drifted_features_first_with_distributions_history_and_their_alerts() -> None:
    scoring, learning, alerts = run_monitors()
    other = alerts[0].model_copy(update={"model": "other", "alert_id": "x"})
    data = report_data("m", scoring, learning, [*reversed(alerts), other], {"served": 3, "challenger": 4})
    json.dumps(data, allow_nan=False)
    names = [f["name"] for f in data["features"]]
    assert set(names[:2]) == {"moves", "colour"} and names[2] == "steady"
    colour = next(f for f in data["features"] if f["name"] == "colour")
    categories = colour["distribution"]["categories"]
    assert sorted(categories[:-1]) == ["blue", "green", "red"] and categories[-1] == "(unseen)"
    green = categories.index("green")
    assert colour["distribution"]["window"][green] > 0.5 > colour["distribution"]["reference"][green]
    assert colour["alerts"] and "chi2|p_value" in colour["history"]["series"]
    steady = next(f for f in data["features"] if f["name"] == "steady")
    assert not steady["alerts"] and steady["tests"]["ks"]["p_value"] > data["counts"]["alpha"]
    assert [a["ts"] for a in data["alerts"]] == sorted(a["ts"] for a in data["alerts"])
    assert {a["model"] for a in data["alerts"]} == {"m"}
    assert data["counts"]["events"] == data["counts"]["outcomes"] == 6000 and data["counts"]["label_coverage"] == 1
    perf = data["performance"]
    realised, low, high = (perf["realised_history"][k] for k in ("value", "low", "high"))
    assert len(realised) == len(low) == len(high) >= 20
    assert all(lo <= v <= hi for v, lo, hi in zip(realised, low, high, strict=True) if v is not None)
    assert realised[-1] < 0.6 < realised[10], "the realised accuracy fell to chance after the drift"
    assert perf["estimated"] > 0.7  # the confidences did not change: the estimate cannot see concept drift
    assert data["prediction"]["distribution"] is not None
    windows = perf["cbpe_windows"]  # the learning monitor's CBPE, estimated vs realised per 1,000 labels
    assert len(windows) >= 3 and all(w["estimated"]["accuracy"] is not None for w in windows)
    assert windows[-1]["realised"]["accuracy"] < 0.6  # after the drift the labels are coin flips
    assert data["versions"] == {"served": 3, "challenger": 4}


def test_a_model_with_only_a_learning_checkpoint_still_reports() -> None:
    _, learning, _ = run_monitors()
    data = report_data("m", None, learning, [], {"served": 1, "challenger": None})
    assert data["features"] == [] and data["prediction"] is None and data["counts"]["outcomes"] == 6000
    assert data["performance"]["realised"] is not None
