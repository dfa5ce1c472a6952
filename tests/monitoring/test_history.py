"""The monitor's history: bounded, thinned evenly, checkpointed with the monitor, and old checkpoints still load."""

from __future__ import annotations

import math

import numpy as np

from driftline.models.features import FeatureSchema
from driftline.monitoring.checkpoint import seal
from driftline.monitoring.history import History
from driftline.monitoring.monitor import Monitor, MonitorConfig


def gauges(value: float, extra: bool = False) -> dict:
    detectors = [{"kind": "data_drift", "feature": "x", "detector": "ks", "statistic": value, "p_value": 1 - value}]
    if extra:
        detectors.append({"kind": "concept_drift", "feature": "", "detector": "adwin", "statistic": 1.0})
    return {"detectors": detectors, "quality": [], "performance": {}}


def test_history_stays_within_capacity_keeps_the_newest_point_and_covers_the_whole_run() -> None:
    history = History(every=10, capacity=8)
    for events in range(7, 10_000, 7):
        history.observe(events, events, lambda e=events: gauges(e / 10_000))
    assert 4 <= len(history.events) <= 8
    assert history.events[-1] >= 10_000 - 7 - history.every
    assert history.events[0] <= 10 * 2  # the oldest point is still from the start of the run
    assert history.events == sorted(history.events)
    assert len(history.series["data_drift|x|ks|statistic"]) == len(history.events)


def test_series_filtered_by_kind_and_padded_with_nan_when_they_appear_late() -> None:
    history = History(every=1, kinds=("data_drift", "concept_drift"))
    history.observe(1, 1, lambda: gauges(0.1))
    history.observe(2, 2, lambda: gauges(0.2, extra=True))
    assert math.isnan(history.series["concept_drift||adwin|statistic"][0])
    assert history.to_dict()["series"]["concept_drift||adwin|statistic"] == [None, 1.0]
    only = History(every=1, kinds=("concept_drift",))
    only.observe(1, 1, lambda: gauges(0.1, extra=True))
    assert list(only.series) == ["concept_drift||adwin|statistic"]


def test_the_history_travels_in_the_checkpoint_and_an_older_checkpoint_gets_an_empty_one() -> None:
    monitor = Monitor("m", FeatureSchema({"x": "numeric"}), "regression", None, MonitorConfig(reference_events=300))
    rows = [{"x": float(v)} for v in np.random.default_rng(0).normal(0, 1, 1000)]
    for start in range(0, 1000, 100):
        monitor.observe_events(
            [str(i) for i in range(start, start + 100)], rows[start : start + 100], [0.0] * 100, [None] * 100, 1, start
        )
    restored = Monitor.restore(monitor.snapshot())
    assert restored.history.events == monitor.history.events and len(restored.history.events) == 4
    assert "data_drift|x|ks|p_value" in restored.history.series
    state = monitor.__getstate__()
    del state["history"], state["outcome_history"]  # as the previous code pickled it
    old = Monitor.__new__(Monitor)
    old.__setstate__(state)  # what unpickling that checkpoint does
    assert old.history.events == [] and old.outcome_history.kinds == ("concept_drift", "performance|realised")
    assert Monitor.restore(seal(old)).history.events == []
