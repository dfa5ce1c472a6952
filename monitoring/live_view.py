"""What ``driftline report`` shows, read from the monitors' checkpoints: one JSON-ready dict, no I/O.

:func:`report_data` takes the scoring monitor (features, predictions, data quality, label-free performance
estimate) and the learning monitor (realised performance, concept drift) of one model as restored from their
checkpoints, the model's alerts and its served / challenger versions. It reads the monitors through
:meth:`Monitor.gauges`, their :class:`driftline.monitoring.history.History` and the drift detectors'
``distributions()`` (:func:`feature_distributions`, :func:`prediction_distribution`: the only two functions that
know where the detector families keep them).

Examples
--------
>>> from driftline.models.features import FeatureSchema
>>> from driftline.monitoring.monitor import Monitor, MonitorConfig
>>> rng = np.random.default_rng(0)
>>> scoring = Monitor("demo", FeatureSchema({"x": "numeric"}), "regression", None, MonitorConfig(reference_events=500))
>>> for batch in range(8):
...     rows = [{"x": float(v)} for v in rng.normal(3.0 if batch >= 4 else 0.0, 1, 500)]
...     _ = scoring.observe_events([f"e{batch}-{i}" for i in range(500)], rows, [0.0] * 500, [None] * 500, 1,
...                                batch * 1000)
>>> data = report_data("demo", scoring, None, [], {"served": 1, "challenger": None})
>>> feature = data["features"][0]
>>> feature["name"], feature["kind"], feature["tests"]["ks"]["p_value"] < 1e-6, len(feature["history"]["events"])
('x', 'numeric', True, 8)
>>> round(sum(feature["distribution"]["window"]), 6), data["counts"]["events"]
(1.0, 4000)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from driftline.contract.records import Alert
from driftline.monitoring.drift_prediction import PREDICTION
from driftline.monitoring.monitor import Monitor

#: z of the two-sided 95% band drawn around the estimated and realised performance.
Z95 = 1.959963984540054


def report_data(
    model: str,
    scoring: Monitor | None,
    learning: Monitor | None,
    alerts: Sequence[Alert],
    versions: dict[str, Any],
) -> dict[str, Any]:
    """Everything the live report draws, JSON-ready (NaN and infinities as None)."""
    gauges = scoring.gauges() if scoring is not None else {}
    learned = learning.gauges() if learning is not None else {}
    mine = sorted((a for a in alerts if a.model == model), key=lambda a: (a.ts, a.alert_id))
    history = scoring.history.to_dict() if scoring is not None else _empty_history()
    outcomes = learning.outcome_history.to_dict() if learning is not None else _empty_history()
    features = _features(scoring, gauges, history, mine) if scoring is not None else []
    return _clean(
        {
            "model": model,
            "versions": versions,
            "task": scoring.task if scoring is not None else learning.task if learning is not None else None,
            "counts": {
                "events": gauges.get("events", 0),
                "invalid": gauges.get("invalid", 0),
                "outcomes": learned.get("outcomes", 0),
                "label_coverage": min(1.0, learned["outcomes"] / gauges["events"])
                if gauges.get("events") and learned
                else None,
                "label_lag_seconds": learned.get("labels", {}).get("lag_seconds"),
                "learning_reference": gauges.get("learning_reference"),
                "alpha": gauges.get("alpha"),
                "detectors_budgeted": gauges.get("detectors_budgeted"),
            },
            "features": features,
            "prediction": _prediction(scoring, gauges, history) if scoring is not None else None,
            "performance": _performance(scoring, learning, gauges, learned, history, outcomes),
            "quality": _quality(gauges, history),
            "concept": {
                "tests": [d for d in learned.get("detectors", []) if d["kind"] == "concept_drift"],
                "history": outcomes,
            },
            "alerts": [a.model_dump(mode="json") for a in mine],
        }
    )


def _empty_history() -> dict[str, Any]:
    return {"every": None, "events": [], "ts": [], "series": {}}


def _tests(gauges: dict[str, Any], kind: str, feature: str) -> dict[str, dict[str, Any]]:
    return {
        d["detector"]: {k: d[k] for k in ("statistic", "p_value", "threshold", "score")}
        for d in gauges.get("detectors", [])
        if d["kind"] == kind and d["feature"] == feature
    }


def _series(history: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The history of the series starting with ``prefix`` (the prefix cut off their names)."""
    series = {k.removeprefix(prefix): v for k, v in history["series"].items() if k.startswith(prefix)}
    return {"events": history["events"], "ts": history["ts"], "series": series}


def feature_distributions(monitor: Monitor) -> dict[str, dict[str, list]]:
    """Reference vs current window of each feature the data-drift family tests (none while it learns its
    reference): the only place the report reaches into a detector family."""
    family = monitor.families.get("data_drift")
    bank = getattr(family, "bank", None)
    found = {name: bank.distributions(f) for f, name in enumerate(bank.features)} if bank is not None else {}
    for name, detector in getattr(family, "categorical", {}).items():
        found[name] = detector.distributions()
    return found


def prediction_distribution(monitor: Monitor) -> dict[str, list] | None:
    """Reference vs current window of the model's output, once the prediction-drift family has a reference."""
    drift = getattr(monitor.families.get("prediction_drift"), "drift", None)
    if getattr(drift, "bank", None) is not None:
        return drift.bank.distributions(0)
    if getattr(drift, "categorical", None) is not None:
        return drift.categorical.distributions()
    return None


def _features(
    monitor: Monitor, gauges: dict[str, Any], history: dict[str, Any], alerts: Sequence[Alert]
) -> list[dict[str, Any]]:
    distributions = feature_distributions(monitor)
    rows = []
    for name in [*monitor.numeric, *monitor.categorical]:
        numeric = name in monitor.numeric
        distribution = distributions.get(name)
        tests = _tests(gauges, "data_drift", name)
        fired = [a.alert_id for a in alerts if a.kind in ("data_drift", "data_quality") and a.feature == name]
        p_values = [t["p_value"] for t in tests.values() if t.get("p_value") is not None]
        rows.append(
            {
                "name": name,
                "kind": "numeric" if numeric else "categorical",
                "tests": tests,
                "min_p_value": min(p_values) if p_values else None,
                "distribution": distribution,
                "history": _series(history, f"data_drift|{name}|"),
                "alerts": fired,
            }
        )
    rows.sort(key=lambda r: (not r["alerts"], r["min_p_value"] if r["min_p_value"] is not None else 2.0))
    return rows


def _prediction(monitor: Monitor, gauges: dict[str, Any], history: dict[str, Any]) -> dict[str, Any]:
    return {
        "subject": PREDICTION if monitor.task != "multiclass" else "predicted class",
        "tests": _tests(gauges, "prediction_drift", ""),
        "distribution": prediction_distribution(monitor),
        "history": _series(history, "prediction_drift||"),
    }


def _band(values: list[float | None], n: int) -> tuple[list[float | None], list[float | None]]:
    """A 95% normal band of a proportion over ``n`` outcomes."""
    low, high = [], []
    for v in values:
        if v is None or not math.isfinite(v):
            low.append(None)
            high.append(None)
            continue
        half = Z95 * math.sqrt(max(v * (1 - v), 0.0) / max(n, 1))
        low.append(max(0.0, v - half))
        high.append(min(1.0, v + half))
    return low, high


def _performance(
    scoring: Monitor | None,
    learning: Monitor | None,
    gauges: dict[str, Any],
    learned: dict[str, Any],
    history: dict[str, Any],
    outcomes: dict[str, Any],
) -> dict[str, Any]:
    monitor = scoring or learning
    window = monitor.config.performance_window if monitor is not None else 0
    proportion = monitor is not None and monitor.task != "regression"
    estimated = history["series"].get("performance|estimated", [])
    realised = outcomes["series"].get("performance|realised", [])
    est_band = _band(estimated, window) if proportion else ([], [])
    real_band = _band(realised, window) if proportion else ([], [])
    perf, perf_learned = gauges.get("performance", {}), learned.get("performance", {})
    return {
        "metric": perf_learned.get("metric") or perf.get("metric"),
        "window": window,
        "estimated": perf.get("estimated"),
        "estimated_reference": perf.get("estimated_reference"),
        "realised": perf_learned.get("rolling"),
        "estimated_history": {"ts": history["ts"], "value": estimated, "low": est_band[0], "high": est_band[1]},
        "realised_history": {"ts": outcomes["ts"], "value": realised, "low": real_band[0], "high": real_band[1]},
        "cbpe_windows": learning.performance_windows() if learning is not None else [],
    }


def _quality(gauges: dict[str, Any], history: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for q in gauges.get("quality", []):
        key = f"quality|{q['feature']}|{q['check']}|rate"
        rows.append({**q, "history": {"ts": history["ts"], "value": history["series"].get(key, [])}})
    return rows


def _clean(value: Any) -> Any:
    """NaN and infinities as None, numpy numbers as Python ones (strict JSON)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
