"""The Monitor end to end on synthetic batches: alerts and their fields, reference learning, quality, concept
drift and actions, deduplication across workers, checkpoint and restore without an alert storm, gauges."""

from __future__ import annotations

import dataclasses
import pickle
import random
from collections.abc import Iterator
from typing import Any

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from driftline.models.feature_columns import prepare_columns
from driftline.models.features import FeatureSchema
from driftline.models.probability_rows import ProbabilityRows
from driftline.models.reference import ReferenceProfile
from driftline.monitoring.dedup import InMemoryDeduplicator
from driftline.monitoring.monitor import Monitor, MonitorConfig, _matching, _same
from driftline.streams.metrics_drift import DriftMetrics

SCHEMA = FeatureSchema({"amount": "numeric", "age": "numeric", "country": "categorical"})
CONFIG = MonitorConfig(reference_events=2000, cooldown_events=0, cooldown_seconds=0)


def rows(
    rng: np.random.Generator, n: int, shift: float = 0.0, countries: str = "abc", missing: float = 0.0
) -> list[dict[str, Any]]:
    out = []
    for amount, age, country, gone in zip(
        rng.normal(shift, 1, n),
        rng.integers(18, 80, n),
        rng.choice(list(countries), n),
        rng.random(n) < missing,
        strict=True,
    ):
        row: dict[str, Any] = {"age": float(age), "country": str(country)}
        if not gone:
            row["amount"] = float(amount)
        out.append(row)
    return out


def batches(rng: np.random.Generator, count: int, start: int = 0, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
    """(event_ids, features, predictions, probabilities) batches of 500 with a well-behaved binary model."""
    for b in range(count):
        features = rows(rng, 500, **kwargs)
        scores = np.clip(rng.beta(2, 5, 500), 0.01, 0.99)
        probabilities = [{"False": 1 - s, "True": s} for s in scores.tolist()]
        predictions = [s >= 0.5 for s in scores.tolist()]
        ids = [f"e{start + b * 500 + i}" for i in range(500)]
        yield ids, features, predictions, probabilities


def feed(monitor: Monitor, rng: np.random.Generator, count: int, start: int = 0, **kwargs: Any) -> list[Any]:
    alerts = []
    for b, (ids, features, predictions, probabilities) in enumerate(batches(rng, count, start, **kwargs)):
        alerts += monitor.observe_events(ids, features, predictions, probabilities, 1, (start + b * 500) * 10)
    return alerts


def test_stationary_stream_raises_no_alert_after_learning_its_reference_from_the_first_events() -> None:
    monitor = Monitor("m", SCHEMA, "binary", None, CONFIG)
    assert feed(monitor, np.random.default_rng(0), 80) == []
    gauges = monitor.gauges()
    assert gauges["learning_reference"] is False and gauges["events"] == 40_000


def test_shifted_numeric_feature_raises_a_typed_data_drift_alert_at_the_event_where_it_fired() -> None:
    rng = np.random.default_rng(1)
    monitor = Monitor("fraud", SCHEMA, "binary", None, CONFIG)
    assert feed(monitor, rng, 10) == []
    alerts = feed(monitor, rng, 4, start=5000, shift=1.5)
    drift = [a for a in alerts if a.kind == "data_drift" and a.feature == "amount"]
    assert {a.detector for a in drift} == {"psi", "ks"}
    first = drift[0]
    assert first.model == "fraud" and first.model_version == 1 and first.severity in ("warning", "critical")
    assert first.event_id is not None and 5000 <= int(first.event_id[1:]) < 5500
    assert first.statistic is not None and first.threshold is not None and first.statistic > first.threshold
    assert first.window == CONFIG.window and first.action == "none"
    assert not [a for a in alerts if a.kind == "data_drift" and a.feature != "amount"]


def test_categorical_mix_change_and_unseen_categories_raise_drift_and_quality_alerts() -> None:
    rng = np.random.default_rng(2)
    monitor = Monitor("m", SCHEMA, "binary", None, CONFIG)
    feed(monitor, rng, 8)
    alerts = feed(monitor, rng, 4, start=4000, countries="aaaxyz")
    kinds = {(a.kind, a.feature, a.detector) for a in alerts}
    assert ("data_drift", "country", "chi2") in kinds
    assert ("data_quality", "country", "unseen") in kinds


def test_missing_values_above_the_reference_rate_raise_a_data_quality_alert() -> None:
    rng = np.random.default_rng(3)
    monitor = Monitor("m", SCHEMA, "binary", None, CONFIG)
    feed(monitor, rng, 8)
    alerts = feed(monitor, rng, 4, start=4000, missing=0.2)
    assert ("data_quality", "amount", "missing") in {(a.kind, a.feature, a.detector) for a in alerts}


def test_dead_lettered_events_raise_a_schema_violation_alert_with_the_top_reasons() -> None:
    rng = np.random.default_rng(4)
    monitor = Monitor("m", SCHEMA, "binary", None, CONFIG)
    feed(monitor, rng, 6)
    alerts = monitor.observe_invalid(300, ["features.amount: nested values are not allowed"] * 300, ts_ms=99)
    assert [(a.kind, a.detector) for a in alerts] == [("data_quality", "schema")]
    assert "nested values" in alerts[0].message and alerts[0].event_id is None


def test_joined_labels_with_a_jump_of_errors_raise_concept_drift_with_the_configured_retrain_action() -> None:
    rng = np.random.default_rng(5)
    monitor = Monitor("m", SCHEMA, "binary", None, CONFIG)
    alerts = []
    for b in range(30):
        ids = [f"e{b * 500 + i}" for i in range(500)]
        error_rate = 0.05 if b < 20 else 0.4
        y_pred = [True] * 500
        y_true = [bool(rng.random() >= error_rate) for _ in range(500)]
        lagged = [b * 5000 - 7000] * 500
        alerts += monitor.observe_outcomes(ids, y_true, y_pred, [None] * 500, 1, b * 5000, event_ts=lagged)
    concept = [a for a in alerts if a.kind == "concept_drift"]
    assert concept and all(a.action == "retrain" for a in concept)
    assert min(int(a.event_id[1:]) for a in concept) >= 10_000
    gauges = monitor.gauges()
    assert gauges["labels"]["lag_seconds"] == 7.0
    assert gauges["performance"]["rolling"] == pytest.approx(0.6, abs=0.05)


def test_concept_drift_watches_the_concept_predictions_and_the_realised_metric_the_served_ones() -> None:
    """Served predictions stay right while the learner's frozen model starts to err at outcome 10,000: concept
    drift fires on the frozen model's errors (and not at all when they are not given); the realised metric keeps
    the served predictions' error rate."""
    rng = np.random.default_rng(6)
    fired: dict[bool, list[Any]] = {}
    for given in (True, False):
        monitor, alerts = Monitor("m", SCHEMA, "binary", None, CONFIG), []
        for b in range(30):
            ids = [f"e{b * 500 + i}" for i in range(500)]
            y_true = [bool(v) for v in rng.random(500) < 0.5]
            error_rate = 0.05 if b < 20 else 0.4
            concept = [t if rng.random() >= error_rate else not t for t in y_true]
            kwargs = {"concept_predictions": concept} if given else {}
            alerts += monitor.observe_outcomes(ids, y_true, y_true, [None] * 500, 1, b * 5000, **kwargs)
        fired[given] = [a for a in alerts if a.kind == "concept_drift"]
        assert monitor.gauges()["performance"]["rolling"] == 1.0
    assert fired[True] and min(int(a.event_id[1:]) for a in fired[True]) >= 10_000
    assert not fired[False]
    with pytest.raises(ValueError, match="one entry per outcome"):
        monitor.observe_outcomes(["a"], [True], [True], [None], 1, 0, concept_predictions=[])


def test_two_workers_sharing_a_deduplicator_publish_one_alert_for_the_same_drift() -> None:
    shared = InMemoryDeduplicator()
    workers = [Monitor("m", SCHEMA, "binary", None, CONFIG, deduplicator=shared) for _ in range(2)]
    published = []
    for w, monitor in enumerate(workers):
        rng = np.random.default_rng(10 + w)
        feed(monitor, rng, 8)
        published += [a for a in feed(monitor, rng, 3, start=4000, shift=2.0) if a.kind == "data_drift"]
    assert sorted(a.detector for a in published) == ["ks", "psi"]
    assert workers[1].duplicates >= 2


def test_restored_monitor_continues_identically_and_does_not_refire_alerts_already_fired() -> None:
    rng = np.random.default_rng(6)
    monitor = Monitor("m", SCHEMA, "binary", None, CONFIG)
    feed(monitor, rng, 8)
    first = feed(monitor, rng, 3, start=4000, shift=2.0)
    assert first
    blob = monitor.snapshot()
    restored = Monitor.restore(blob)
    assert restored.gauges() == monitor.gauges()
    later = list(batches(np.random.default_rng(7), 4, start=5500, shift=2.0))
    out_original, out_restored = [], []
    for b, (ids, features, predictions, probabilities) in enumerate(later):
        out_original += monitor.observe_events(ids, features, predictions, probabilities, 1, 60_000 + b)
        out_restored += restored.observe_events(ids, features, predictions, probabilities, 1, 60_000 + b)
    assert [a.model_dump() for a in out_original] == [a.model_dump() for a in out_restored]
    assert not [a for a in out_restored if a.kind == "data_drift" and a.feature == "amount"]  # no storm


def test_signed_snapshot_refuses_a_wrong_key_a_tampered_blob_and_an_unsigned_blob() -> None:
    monitor = Monitor("m", SCHEMA, "binary", None, CONFIG)
    feed(monitor, np.random.default_rng(9), 2)
    signed = monitor.snapshot(key=b"k1")
    assert Monitor.restore(signed, key=b"k1").events == 1000
    with pytest.raises(ValueError, match="signature"):
        Monitor.restore(signed, key=b"k2")
    with pytest.raises(ValueError, match="signature"):
        Monitor.restore(signed[:-1] + bytes([signed[-1] ^ 1]), key=b"k1")
    with pytest.raises(ValueError, match="unsigned"):
        Monitor.restore(monitor.snapshot(), key=b"k1")
    with pytest.raises(ValueError):
        Monitor.restore(b"not a snapshot")


def test_reference_profile_from_the_offline_module_is_used_from_the_first_event() -> None:
    rng = np.random.default_rng(11)
    profile = ReferenceProfile.from_rows(rows(rng, 3000), SCHEMA)
    monitor = Monitor("m", SCHEMA, "binary", profile, CONFIG)
    alerts = feed(monitor, rng, 2, shift=2.0)
    assert {a.detector for a in alerts if a.feature == "amount" and a.kind == "data_drift"} >= {"psi", "ks"}


def test_budget_splits_the_fleet_rate_over_every_detector_of_the_monitor() -> None:
    config = dataclasses.replace(CONFIG, correction="bonferroni")
    plain = Monitor("m", SCHEMA, "binary", None, config)
    every = dataclasses.replace(config, streaming_detectors=("adwin", "page_hinkley", "kswin"))
    streaming = Monitor("m", SCHEMA, "binary", None, every)
    assert streaming.detectors == plain.detectors + 3 * len(SCHEMA.numeric)
    assert streaming.alpha < plain.alpha
    looser = Monitor("m", SCHEMA, "binary", None, dataclasses.replace(config, false_alarms_per_100k=10))
    assert looser.alpha == pytest.approx(10 * plain.alpha, rel=0.01)


def test_multiclass_and_regression_models_are_monitored_too() -> None:
    """Prediction drift against the served model's outputs on the reference inputs: x shifts, so do the outputs."""
    rng = random.Random(12)
    schema = FeatureSchema({"x": "numeric"})
    multi = Monitor("m", schema, "multiclass", None, CONFIG)
    regression = Monitor("r", schema, "regression", None, CONFIG)

    def classify(rows: list[dict[str, Any]]) -> list[str]:
        return ["p" if r["x"] < 0 else "q" if r["x"] < 1 else "r" for r in rows]

    alerts_multi, alerts_regression = [], []
    for b in range(14):
        ids = [f"e{b * 500 + i}" for i in range(500)]
        features = [{"x": rng.gauss(0 if b < 10 else 1.5, 1)} for _ in range(500)]
        for monitor in (multi, regression):
            if monitor.prediction_reference_due(1):
                rows = monitor.reference_inputs or []
                outputs = classify(rows) if monitor is multi else [2 * r["x"] for r in rows]
                monitor.set_prediction_reference(1, outputs, [None] * len(rows))
        classes = classify(features)
        probabilities = [{c: 0.8 if c == k else 0.1 for c in "pqr"} for k in classes]
        alerts_multi += multi.observe_events(ids, features, classes, probabilities, 1, b)
        values = [2 * f["x"] for f in features]
        alerts_regression += regression.observe_events(ids, features, values, [None] * 500, 1, b)
    assert ("prediction_drift", "chi2") in {(a.kind, a.detector) for a in alerts_multi}
    assert "prediction_drift" in {a.kind for a in alerts_regression}
    assert min(int(a.event_id[1:]) for a in alerts_multi + alerts_regression if a.kind == "prediction_drift") >= 5000
    assert regression.gauges()["performance"]["metric"] == "mae"


def test_a_model_that_keeps_learning_does_not_flag_its_own_learning_as_prediction_drift() -> None:
    """Stationary inputs, a model whose scores creep version after version: the trailing reference alerts on the
    creep, the served version's outputs on the reference inputs do not."""
    schema = FeatureSchema({"x": "numeric"})
    rng = np.random.default_rng(15)
    by_mode = {}
    for mode in ("trailing", "model"):
        config = dataclasses.replace(CONFIG, prediction_reference=mode, prediction_min_effect={})
        monitor, alerts = Monitor("m", schema, "binary", None, config), []
        for b in range(60):
            version = 1 + b // 2  # a new version every 1,000 events, each more confident than the last
            weight = 0.2 + 0.05 * version

            def score(rows: list[dict[str, Any]], weight: float = weight) -> list[dict[Any, float]]:
                p = 1 / (1 + np.exp(-weight * np.array([r["x"] for r in rows])))
                return [{False: 1 - s, True: s} for s in p.tolist()]

            if monitor.prediction_reference_due(version):
                rows = monitor.reference_inputs or []
                monitor.set_prediction_reference(version, [None] * len(rows), score(rows))
            features = [{"x": x} for x in rng.normal(0, 3, 500).tolist()]
            probabilities = score(features)
            ids = [f"e{b * 500 + i}" for i in range(500)]
            alerts += monitor.observe_events(
                ids, features, [p[True] >= 0.5 for p in probabilities], probabilities, version, b
            )
        by_mode[mode] = [a for a in alerts if a.kind == "prediction_drift"]
    assert by_mode["trailing"] and not by_mode["model"]


def test_gauges_feed_every_prometheus_metric_the_dashboard_uses() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    rng = np.random.default_rng(13)
    monitor = Monitor("m", SCHEMA, "binary", None, dataclasses.replace(CONFIG, streaming_detectors=("adwin",)))
    feed(monitor, rng, 8)
    monitor.observe_outcomes(["e1", "e2"], [True, False], [True, True], [None, None], 1, 5000)
    registry = CollectorRegistry()
    DriftMetrics(registry).update(monitor.gauges(), stage="scoring")
    text = generate_latest(registry).decode()
    for name in (
        "driftline_drift_statistic",
        "driftline_drift_p_value",
        "driftline_quality_rate",
        "driftline_label_lag_seconds",
        "driftline_monitor_events",
        "driftline_rolling_metric",
        "driftline_estimated_metric",
    ):
        assert f"{name}{{" in text, name
    assert 'detector="adwin"' in text and 'detector="psi"' in text and 'detector="cusum"' in text


def test_recommended_threshold_is_offered_for_binary_models_with_a_score_profile() -> None:
    rng = np.random.default_rng(14)
    reference = ReferenceProfile.from_rows(rows(rng, 2000), SCHEMA, predictions=list(rng.beta(2, 5, 2000)))
    monitor = Monitor("m", SCHEMA, "binary", reference, CONFIG)
    feed(monitor, rng, 2)
    threshold = monitor.recommended_threshold()
    assert threshold is not None and 0 < threshold < 1


def test_batches_with_mismatched_lengths_are_refused() -> None:
    monitor = Monitor("m", SCHEMA, "binary", None, CONFIG)
    with pytest.raises(ValueError):
        monitor.observe_events(["e1", "e2"], [{}], [True], [None], 1, 0)
    with pytest.raises(ValueError):
        Monitor("m", SCHEMA, "ranking", None)


def test_a_replay_at_another_speed_raises_the_same_alerts_on_event_time() -> None:
    """Event time and event counts decide, never batch sizes or the machine's clock: the same stream cut into
    batches of 500 (paced) or of random sizes (a backlog read in bursts) gives identical alerts."""
    rng = np.random.default_rng(21)
    stream = [part for b in batches(rng, 12) for part in zip(*b, strict=True)]
    stream += [part for b in batches(rng, 12, start=6000, shift=1.0, missing=0.1) for part in zip(*b, strict=True)]
    config = dataclasses.replace(CONFIG, cooldown_events=1000, cooldown_seconds=30)

    def replay(sizes: Iterator[int]) -> list[dict[str, Any]]:
        monitor, alerts, start = Monitor("m", SCHEMA, "binary", None, config), [], 0
        while start < len(stream):
            ids, features, predictions, probabilities = zip(*stream[start : start + next(sizes)], strict=True)
            ts = [int(i[1:]) * 20 for i in ids]  # 50 events per second of event time
            alerts += monitor.observe_events(list(ids), list(features), predictions, probabilities, 1, ts)
            start += len(ids)
        return [a.model_dump() for a in alerts]

    paced = replay(iter(lambda: 500, None))
    sizes = np.random.default_rng(3).integers(1, 1500, 1000)
    assert paced and replay(iter(sizes.tolist())) == paced
    assert {a["kind"] for a in paced} >= {"data_drift", "data_quality"}
    assert len([a for a in paced if (a["feature"], a["detector"]) == ("amount", "ks")]) == 1  # cooled down


def test_the_scorers_columns_give_the_same_alerts_gauges_and_state_as_the_feature_dicts() -> None:
    """The worker passes its batches as columns (no row dicts): a 30,000-event replay with a numeric shift, a
    categorical mix change, unseen categories and missing values, cut in random batch sizes, gives the same
    alerts, gauges and reference as the dicts the columns stand for, from the reference's learning on."""
    rng = np.random.default_rng(15)
    stream = [part for b in batches(rng, 30, missing=0.02) for part in zip(*b, strict=True)]
    drifted = batches(rng, 30, start=15_000, shift=0.8, countries="aaaxyz", missing=0.1)
    stream += [part for b in drifted for part in zip(*b, strict=True)]
    for i, (_, features, _, _) in enumerate(stream):
        if i % 37 == 0:  # a missing category now and then
            features.pop("country")
    config = dataclasses.replace(CONFIG, cooldown_events=1000, cooldown_seconds=30)
    by_rows, by_columns = (Monitor("m", SCHEMA, "binary", None, config) for _ in range(2))
    alerts: tuple[list[Any], list[Any]] = ([], [])
    sizes, start = iter(np.random.default_rng(4).integers(1, 1500, 1000).tolist()), 0
    while start < len(stream):
        ids, features, predictions, probabilities = zip(*stream[start : start + next(sizes)], strict=True)
        columns, errors = prepare_columns(SCHEMA, features)
        assert not errors
        ts = [int(i[1:]) * 20 for i in ids]
        alerts[0].extend(by_rows.observe_events(ids, columns.rows(), predictions, probabilities, 1, ts))
        alerts[1].extend(by_columns.observe_events(ids, None, predictions, probabilities, 1, ts, columns=columns))
        start += len(ids)
    assert [a.model_dump() for a in alerts[1]] == [a.model_dump() for a in alerts[0]]
    assert {(a.kind, a.feature) for a in alerts[0]} >= {("data_drift", "amount"), ("data_drift", "country")}
    assert {a.detector for a in alerts[0] if a.kind == "data_quality"} >= {"missing", "unseen"}
    assert by_columns.gauges() == by_rows.gauges()
    assert by_columns.reference == by_rows.reference and by_columns.reference_inputs == by_rows.reference_inputs
    with pytest.raises(ValueError):
        by_columns.observe_events(["e"], None, [True], [None], 1, 0)


def test_probabilities_as_a_matrix_give_the_same_alerts_gauges_and_state_as_the_dicts() -> None:
    """The ordered monitor gets the feed's probabilities as one matrix (no dict per event): binary with a score
    shift (prediction drift) and multiclass, in random batch sizes, give the same alerts, gauges and state as the
    dicts the matrix stands for."""
    rng = np.random.default_rng(16)
    stream = [part for b in batches(rng, 16) for part in zip(*b, strict=True)]
    for ids, features, _, _ in batches(rng, 16, start=8000, shift=1.0):
        scores = np.clip(rng.beta(5, 2, len(ids)), 0.01, 0.99).tolist()  # the scores shift
        probabilities = [{"False": 1 - s, "True": s} for s in scores]
        stream += zip(ids, features, [s >= 0.5 for s in scores], probabilities, strict=True)
    config = dataclasses.replace(CONFIG, cooldown_events=1000, cooldown_seconds=30)
    for task in ("binary", "multiclass"):
        by_dicts, by_matrix = (Monitor("m", SCHEMA, task, None, config) for _ in range(2))
        alerts: tuple[list[Any], list[Any]] = ([], [])
        sizes, start = iter(np.random.default_rng(5).integers(1, 1500, 1000).tolist()), 0
        while start < len(stream):
            ids, features, predictions, probabilities = zip(*stream[start : start + next(sizes)], strict=True)
            columns, _ = prepare_columns(SCHEMA, features)
            matrix = ProbabilityRows(["False", "True"], np.array([[p["False"], p["True"]] for p in probabilities]))
            ts = [int(i[1:]) * 20 for i in ids]
            for monitor in (by_dicts, by_matrix):  # as the ordered monitor does: the served version's outputs
                if monitor.prediction_reference_due(1):
                    outputs = np.random.default_rng(9).beta(2, 5, len(monitor.reference_inputs or [])).tolist()
                    monitor.set_prediction_reference(
                        1, [s >= 0.5 for s in outputs], [{"False": 1 - s, "True": s} for s in outputs]
                    )
            alerts[0].extend(by_dicts.observe_events(ids, None, predictions, probabilities, 1, ts, columns=columns))
            alerts[1].extend(by_matrix.observe_events(ids, None, predictions, matrix, 1, ts, columns=columns))
            start += len(ids)
        assert [a.model_dump() for a in alerts[1]] == [a.model_dump() for a in alerts[0]]
        assert by_matrix.gauges() == by_dicts.gauges()
        assert pickle.dumps(by_matrix.families) == pickle.dumps(by_dicts.families)
        assert "data_drift" in {a.kind for a in alerts[0]}
        if task == "binary":
            assert "prediction_drift" in {a.kind for a in alerts[0]}


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    values=st.lists(st.booleans(), max_size=40),
    positive=st.sampled_from([True, False, 1, 0, 1.0, 2, "1", "0", "true", "True", "False", "yes", None, "x"]),
)
def test_bools_match_any_positive_class_at_once_as_one_by_one(values: list[bool], positive: Any) -> None:
    """Property: a binary learner's bool labels and predictions against its positive class, whatever its type (an
    int 1 from the training data, a string), match as :func:`_same` says one value at a time."""
    assert _matching(values, positive).tolist() == [_same(v, positive) for v in values]
    assert _matching(values, positive).dtype == bool


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.example(sizes=[500] * 6, lags=[7000], ts_kind="list", seed=5)
@hypothesis.given(
    sizes=st.lists(st.integers(1, 400), min_size=1, max_size=6),
    lags=st.lists(st.integers(-(10**6), 10**9), min_size=1, max_size=5),
    ts_kind=st.sampled_from(["list", "array", "one"]),
    seed=st.integers(0, 2**16),
)
def test_the_label_lag_computed_on_arrays_leaves_the_state_and_alerts_of_the_outcome_by_outcome_path(
    sizes, lags, ts_kind, seed
) -> None:
    """The learning monitor's label lag (median of label time less event time) on int64 arrays: the same alerts
    and the same pickled state, batch after batch, as the path outcome by outcome (forced here), with a jump of
    errors that fires concept drift."""
    from driftline.monitoring import monitor as monitor_module

    rng = np.random.default_rng(seed)
    fast, slow = (Monitor("m", SCHEMA, "binary", None, CONFIG) for _ in range(2))
    fast_alerts, slow_alerts = [], []
    start = 0
    for b, n in enumerate(sizes * 4):
        ids = [f"e{start + i}" for i in range(n)]
        y_true = [bool(v) for v in rng.random(n) >= (0.05 if b < len(sizes) * 2 else 0.6)]
        y_pred = [True] * n
        proba = [{True: p, False: 1 - p} for p in rng.random(n).tolist()]
        label_ts = [10**9 + 100 * (start + i) for i in range(n)]
        event_ts = [t - lags[(start + i) % len(lags)] for i, t in enumerate(label_ts)]
        ts: Any = label_ts if ts_kind == "list" else np.array(label_ts) if ts_kind == "array" else label_ts[0]
        fast_alerts += fast.observe_outcomes(ids, y_true, y_pred, proba, 1, ts, event_ts=event_ts)
        with pytest.MonkeyPatch.context() as patched:
            patched.setattr(monitor_module, "_label_lag", lambda *_: None)
            slow_alerts += slow.observe_outcomes(ids, y_true, y_pred, proba, 1, ts, event_ts=event_ts)
        assert fast.gauges() == slow.gauges()
        assert pickle.dumps(fast.__getstate__()) == pickle.dumps(slow.__getstate__())
        start += n
    if len(sizes) == 6 and min(sizes) == 500:  # the explicit example: its jump of errors fires concept drift
        assert any(a.kind == "concept_drift" for a in fast_alerts)
    assert [a.model_copy(update={"alert_id": ""}) for a in fast_alerts] == [
        a.model_copy(update={"alert_id": ""}) for a in slow_alerts
    ]
