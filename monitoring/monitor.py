"""The monitor of one model: every detector, the alert policy and deduplication behind three calls.

The scoring agent calls :meth:`Monitor.observe_events` once per scored batch and :meth:`Monitor.observe_invalid`
for dead-lettered events; the learning agent calls :meth:`Monitor.observe_outcomes` with joined labels. Each
returns the :class:`driftline.contract.records.Alert` records to publish on ``alerts``. Pure logic, no I/O (the
deduplicator may be Redis-backed, see :mod:`driftline.monitoring.dedup`).

What is watched (each detector held to its share of one fleet-wide false-alarm budget, see
:mod:`driftline.monitoring.budget`):

* data drift per feature: numeric features by windowed PSI and KS (:mod:`driftline.monitoring.drift_numeric`),
  categorical ones by chi-square with Jensen-Shannon distance (:mod:`driftline.monitoring.drift_categorical`), and
  optionally River's ADWIN / Page-Hinkley / KSWIN on block means (:mod:`driftline.monitoring.streaming`);
* prediction drift: the positive-class score (binary), the predicted class (multiclass) or the predicted value
  (regression), against a trailing reference period (the model keeps learning,
  :mod:`driftline.monitoring.drift_prediction`);
* concept drift on the error stream (:mod:`driftline.monitoring.concept`) and a label-free performance estimate
  (:mod:`driftline.monitoring.performance_estimate`) beside the realised metric;
* data quality (:mod:`driftline.monitoring.quality`): missing, out-of-range, unseen categories, schema violations.

Without a reference profile the monitor learns one from the first ``reference_events`` events, then tests.
:meth:`Monitor.snapshot` / :meth:`Monitor.restore` checkpoint every detector and the policy state, so a restarted
worker neither loses evidence nor re-fires the alerts it already fired.

Examples
--------
>>> from driftline.models.features import FeatureSchema
>>> rng = np.random.default_rng(0)
>>> monitor = Monitor("demo", FeatureSchema({"x": "numeric"}), "regression", reference=None,
...                   config=MonitorConfig(reference_events=1000))
>>> fired = []
>>> for batch in range(20):  # x shifts by two standard deviations from event 5000 on
...     shift = 2.0 if batch >= 10 else 0.0
...     ids = [f"e{batch * 500 + i}" for i in range(500)]
...     rows = [{"x": float(v)} for v in rng.normal(shift, 1, 500)]
...     fired += monitor.observe_events(ids, rows, [0.0] * 500, [None] * 500, 1, batch * 500_000)
>>> for alert in sorted(fired, key=lambda a: (a.event_id, a.detector)):
...     print(alert.kind, alert.feature, alert.detector, alert.severity, alert.event_id)
data_drift x ks critical e5249
data_drift x psi critical e5249
data_quality x out_of_range critical e5499
>>> Monitor.restore(monitor.snapshot()).gauges()["events"]
10000
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

import numpy as np

from driftline.contract.records import Alert, AlertKind
from driftline.models.features import FeatureSchema
from driftline.models.reference import CategoricalProfile, NumericProfile, ReferenceProfile
from driftline.models.specs import TASKS
from driftline.monitoring.actions import choose_action, recommend_threshold
from driftline.monitoring.checkpoint import seal, unseal
from driftline.monitoring.concept import ErrorStream, detectors_for_task
from driftline.monitoring.config import MonitorConfig
from driftline.monitoring.dedup import Deduplicator, InMemoryDeduplicator
from driftline.monitoring.drift_categorical import CategoricalDrift
from driftline.monitoring.drift_numeric import NumericDriftBank, NumericReference
from driftline.monitoring.drift_prediction import PREDICTION, PredictionDrift
from driftline.monitoring.performance_estimate import ConfidenceEstimate, RealisedMetric
from driftline.monitoring.policy import AlertPolicy, DetectorResult
from driftline.monitoring.quality import DataQuality, QualityCheck, out_of_range_rate, unseen_rate
from driftline.monitoring.streaming import ADWIN_CLOCK, StreamingBank
from driftline.monitoring.window import WindowTest

__all__ = ["Monitor", "MonitorConfig"]

_NAN = float("nan")


@dataclass(frozen=True)
class _Source:
    """Where a test result comes from: the alert fields a detector fixes."""

    key: str
    kind: AlertKind
    feature: str | None
    detector: str
    window: int | None
    resets: bool = False


@lru_cache(maxsize=4096)
def _source(kind: AlertKind, detector: str, feature: str | None, window: int | None, resets: bool = False) -> _Source:
    return _Source(f"{kind}:{detector}:{feature or '-'}", kind, feature, detector, window, resets)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


class Monitor:
    """Drift, quality and performance monitoring of one model (see the module docstring).

    Parameters
    ----------
    model
        Model name (alerts carry it).
    schema
        The model's feature schema; ``features`` passed in are its ``prepare`` output.
    task
        ``"binary"``, ``"multiclass"`` or ``"regression"``.
    reference
        Reference profile from the offline module, or None to learn one from the first events.
    config
        :class:`MonitorConfig`.
    deduplicator
        Alert dedup across workers (default: in-memory). Not checkpointed; pass it again to :meth:`restore`.
    """

    def __init__(
        self,
        model: str,
        schema: FeatureSchema,
        task: str,
        reference: ReferenceProfile | None,
        config: MonitorConfig = MonitorConfig(),  # noqa: B008 - frozen, never mutated
        deduplicator: Deduplicator | None = None,
    ):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        self.model, self.schema, self.task, self.config = model, schema, task, config
        self.policy = AlertPolicy(config.policy_config())
        self.dedup: Deduplicator = deduplicator or InMemoryDeduplicator()
        self.numeric, self.categorical = schema.numeric, schema.categorical
        self.events = self.outcomes = self.invalid = 0
        self.alerts_fired: Counter[tuple[str, str]] = Counter()
        self.duplicates = 0
        self._prediction_numeric = task != "multiclass"
        error_names = detectors_for_task(task, config.error_detectors)
        self.detectors = self._count_detectors(len(error_names))
        budget = config.budget()
        self.alpha = budget.alpha(self.detectors, config.hop)
        self.arl = budget.arl(self.detectors)
        self._block_alpha = budget.alpha(self.detectors, config.streaming_block * ADWIN_CLOCK)
        self._kswin_alpha = budget.alpha(self.detectors, config.kswin_block)
        self.errors = ErrorStream(
            task, error_names, alpha=budget.alpha(self.detectors, 1), arl=self.arl, grace=config.error_grace
        )
        self.realised = RealisedMetric(task, config.performance_window)
        self.confidence = (
            None
            if task == "regression"
            else ConfidenceEstimate(config.performance_window, config.hop, self.alpha, config.performance_tolerance)
        )
        self.reference = reference
        self.feature_bank: NumericDriftBank | None = None
        self._bank_columns: list[int] = []
        self.categorical_drift: dict[str, CategoricalDrift] = {}
        self.quality: DataQuality | None = None
        self._ranges = (np.full(len(self.numeric), -np.inf), np.full(len(self.numeric), np.inf))
        self._range_columns: list[int] = []
        self.streaming: StreamingBank | None = None
        self.prediction_streaming: StreamingBank | None = None
        self.prediction = self._prediction_drift()
        self._streaming_columns: list[int] = []
        self._positive_rate: float | None = None
        self._positive_class: Any = None
        self._feature_rows: list[dict[str, Any]] | None = None
        self._recent_scores: deque[np.ndarray] = deque(maxlen=max(1, config.window // 100))
        self._invalid_reasons: Counter[str] = Counter()
        self._label_lag_ms: float | None = None
        self._getter = itemgetter(*self.numeric) if self.numeric else None
        self._event_ts: dict[str, int] = {}
        self._ts_batches: deque[list[str]] = deque()
        if reference is not None:
            self._build_feature_detectors(reference)
            prediction = reference.prediction
            if prediction is not None and (prediction.kind == "numeric") == self._prediction_numeric:
                self._set_prediction_reference(prediction)
                if isinstance(prediction, NumericProfile) and prediction.sample and task == "binary":
                    self._positive_rate = float(np.mean(np.asarray(prediction.sample) >= 0.5))
        else:
            self._feature_rows = []

    # ---------------------------------------------------------------------------------------------- setup

    def _streaming_scope(self) -> list[str]:
        scope = self.config.streaming_features
        if scope is None:
            return list(self.numeric)
        names = self.numeric + ([PREDICTION] if self._prediction_numeric else [])
        return [n for n in names if n in scope]

    def _count_detectors(self, error_detectors: int) -> int:
        nf, nc = len(self.numeric), len(self.categorical)
        windowed = 2 * nf + nc + (2 if self._prediction_numeric else 1)
        quality = (nf + nc) + nf + nc + 1
        cbpe = 0 if self.task == "regression" else 1
        streams = len(self._streaming_scope()) * len(self.config.streaming_detectors)
        return windowed + quality + cbpe + streams + error_detectors

    def _streaming_bank(self, streams: dict[str, tuple[float, float]]) -> StreamingBank | None:
        scope = self._streaming_scope()
        streams = {name: ref for name, ref in streams.items() if name in scope}
        if not streams or not self.config.streaming_detectors:
            return None
        cfg = self.config
        return StreamingBank(
            streams,
            cfg.streaming_detectors,
            cfg.streaming_block,
            cfg.kswin_block,
            self._block_alpha,
            self._kswin_alpha,
            self.arl,
        )

    def _build_feature_detectors(self, reference: ReferenceProfile) -> None:
        cfg = self.config
        refs: dict[str, NumericReference] = {}
        moments: dict[str, tuple[float, float]] = {}
        checks: list[QualityCheck] = []
        lows, highs = self._ranges
        for i, name in enumerate(self.numeric):
            profile = reference.features.get(name)
            missing = profile.missing_rate if profile is not None else 0.0
            checks.append(QualityCheck("missing", name, missing))
            if isinstance(profile, NumericProfile) and profile.sample:
                refs[name] = NumericReference.of(profile.sample, profile.quantiles)
                lows[i], highs[i] = profile.minimum, profile.maximum
                self._range_columns.append(i)
                moments[name] = (profile.mean, profile.std)
        for name in self.categorical:
            profile = reference.features.get(name)
            checks.append(QualityCheck("missing", name, profile.missing_rate if profile is not None else 0.0))
            if isinstance(profile, CategoricalProfile) and profile.frequencies:
                present = max(1, round(profile.count * (1 - profile.missing_rate)))
                self.categorical_drift[name] = CategoricalDrift(
                    profile.frequencies, present, cfg.window, cfg.hop, self.alpha
                )
        for i in self._range_columns:
            profile = reference.features[self.numeric[i]]
            present = max(1, round(profile.count * (1 - profile.missing_rate)))
            checks.append(QualityCheck("out_of_range", self.numeric[i], out_of_range_rate(present)))
        for name, detector in self.categorical_drift.items():
            frequencies = reference.features[name].frequencies  # type: ignore[union-attr]
            checks.append(QualityCheck("unseen", name, unseen_rate(frequencies, detector.m)))
        checks.append(QualityCheck("schema", None, 1 / (max(reference.rows, 0) + 1)))
        if refs:
            self.feature_bank = NumericDriftBank(refs, cfg.window, cfg.hop, self.alpha)
            self._bank_columns = [self.numeric.index(name) for name in refs]
        self.streaming = self._streaming_bank(moments)
        if self.streaming is not None:
            self._streaming_columns = [self.numeric.index(name) for name in self.streaming.streams]
        self.quality = DataQuality(checks, cfg.window, cfg.hop, self.alpha, cfg.quality_min_excess)

    def _set_prediction_reference(self, profile: NumericProfile | CategoricalProfile) -> None:
        """The offline model's output profile: the fixed prediction reference (``prediction_reference="profile"``)
        and the scale of streaming detectors on the score."""
        cfg = self.config
        if cfg.prediction_reference == "profile":
            self.prediction = self._prediction_drift(profile)
        if isinstance(profile, NumericProfile) and profile.sample:
            self.prediction_streaming = self._streaming_bank({PREDICTION: (profile.mean, profile.std)})

    def _prediction_drift(self, profile: NumericProfile | CategoricalProfile | None = None) -> PredictionDrift:
        cfg = self.config
        fixed = profile is not None
        return PredictionDrift(
            "numeric" if self._prediction_numeric else "categorical",
            cfg.window,
            cfg.hop,
            self.alpha,
            lag=10**15 if fixed else cfg.prediction_lag,
            reference_size=cfg.reference_events,
            initial=profile,
            probability=self.task == "binary",
        )

    def reset_prediction_reference(self) -> None:
        """Learn the prediction and confidence references again (call after a rollback or a promotion)."""
        self.prediction = self._prediction_drift()
        self.prediction_streaming = None
        if self.confidence is not None:
            self.confidence.reset_reference()

    # ---------------------------------------------------------------------------------------------- events

    def observe_events(
        self,
        event_ids: Sequence[str],
        features: Sequence[dict[str, Any]],
        predictions: Sequence[Any],
        probabilities: Sequence[dict[Any, float] | None],
        model_version: int,
        ts_ms: int,
        frame: Any = None,
    ) -> list[Alert]:
        """Watch a scored batch (``features`` as prepared by the schema); the alerts it raises.

        ``frame``, optional: the pandas DataFrame the scorer built from ``features`` for ``predict_proba_many``;
        the numeric columns are then read from it instead of from the dicts (cheaper).
        """
        n = len(event_ids)
        if not n:
            return []
        if not len(features) == len(predictions) == len(probabilities) == n:
            raise ValueError("event_ids, features, predictions and probabilities must have one entry per event")
        self.events += n
        self._remember(event_ids, ts_ms)
        found: list[tuple[_Source, WindowTest]] = []
        matrix = self._numeric_matrix(features) if frame is None else self._frame_matrix(frame)
        scores, confidences = self._outputs(predictions, probabilities)
        if self._feature_rows is not None:
            self._learn_features(features)
        else:
            self._watch_features(matrix, features, found)
        self._watch_predictions(scores, predictions, found)
        if self.confidence is not None and confidences is not None:
            source = _source("performance", "cbpe", None, self.config.performance_window)
            found.extend((source, t) for t in self.confidence.update_many(confidences).tests)
        if self._prediction_numeric and scores is not None:
            self._recent_scores.append(scores)
        return self._alerts(found, event_ids, model_version, ts_ms)

    def _numeric_matrix(self, features: Sequence[dict[str, Any]]) -> np.ndarray:
        if self._getter is None:
            return np.empty((len(features), 0))
        try:
            rows = list(map(self._getter, features))
            matrix = np.array(rows, dtype=float).reshape(len(features), len(self.numeric))
        except (KeyError, TypeError, ValueError):
            matrix = np.array([[f.get(name, _NAN) for name in self.numeric] for f in features], dtype=float)
            matrix = matrix.reshape(len(features), len(self.numeric))
        return matrix

    def _frame_matrix(self, frame: Any) -> np.ndarray:
        n = len(frame)
        if list(frame.columns) == self.numeric:
            return frame.to_numpy(dtype=float)
        columns = set(frame.columns)
        return np.column_stack(
            [frame[c].to_numpy(dtype=float) if c in columns else np.full(n, _NAN) for c in self.numeric]
        ).reshape(n, len(self.numeric))

    def _outputs(
        self, predictions: Sequence[Any], probabilities: Sequence[dict[Any, float] | None]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Scores (the numeric output tested for drift) and confidences (top-class probabilities)."""
        if self.task == "regression":
            return np.array([_NAN if p is None else float(p) for p in predictions], dtype=float), None
        if self.task == "multiclass":
            conf = np.array([max(p.values()) if p else _NAN for p in probabilities], dtype=float)
            return None, conf
        if self._positive_class is None:
            first = next((p for p in probabilities if p), None)
            if first is not None:
                self._positive_class = sorted(first, key=str)[-1]
        positive = self._positive_class
        if positive is None:  # no probabilities at all: the 0/1 decision is the score
            scores = np.array([1.0 if _is_positive(p) else 0.0 for p in predictions], dtype=float)
            return scores, None
        scores = np.array([p.get(positive, _NAN) if p else _NAN for p in probabilities], dtype=float)
        return scores, np.maximum(scores, 1 - scores)

    def _learn_features(self, features: Sequence[dict[str, Any]]) -> None:
        assert self._feature_rows is not None
        self._feature_rows.extend(features)
        if len(self._feature_rows) >= self.config.reference_events:
            profile = ReferenceProfile.from_rows(self._feature_rows, self.schema)
            self.reference = profile if self.reference is None else self.reference
            self._feature_rows = None
            self._build_feature_detectors(profile)

    def _watch_features(
        self, matrix: np.ndarray, features: Sequence[dict[str, Any]], found: list[tuple[_Source, WindowTest]]
    ) -> None:
        cfg = self.config
        n = matrix.shape[0]
        if self.feature_bank is not None:
            self._bank_results("data_drift", self.feature_bank.update_many(matrix[:, self._bank_columns]), found)
        missing = np.isnan(matrix).sum(axis=0) if matrix.size else np.zeros(0, dtype=np.int64)
        columns = {name: [f.get(name) for f in features] for name in self.categorical}
        unseen: list[int] = []
        cat_missing: list[int] = []
        for name in self.categorical:
            values = columns[name]
            cat_missing.append(sum(v is None for v in values))
            detector = self.categorical_drift.get(name)
            if detector is None:
                continue
            idx = detector.indices(values)
            unseen.append(int(np.count_nonzero(idx == len(detector.categories))))
            for test in detector.update_indices(idx).tests:
                found.append((_source("data_drift", "chi2", name, cfg.window), test))
        if self.streaming is not None:
            for stream, test in self.streaming.update_many(matrix[:, self._streaming_columns]):
                found.append((_source("data_drift", test.test, stream, None, resets=True), test))
        if self.quality is not None:
            lows, highs = self._ranges
            cols = self._range_columns
            ranged = matrix[:, cols]
            out = ((ranged < lows[cols]) | (ranged > highs[cols])).sum(axis=0)
            counts = np.concatenate([missing, cat_missing, out, unseen, [0]]).astype(np.int64)
            self._quality_results(self.quality.update(n, counts, n - 1), found)

    def _relevant(self, test: WindowTest, source: _Source) -> bool:
        return test.score >= self.config.rearm_score or source.key in self.policy.disarmed

    def _bank_results(self, kind: AlertKind, bank: NumericDriftBank, found: list[tuple[_Source, WindowTest]]) -> None:
        """Tests of a bank that can change the policy's state: past the re-arm score, or of a disarmed detector."""
        floor = self.config.rearm_score
        for position, statistics in bank.evaluations:
            for test in ("psi", "ks"):
                picked = set(np.flatnonzero(statistics[f"{test}_score"] >= floor).tolist())
                if self.policy.disarmed:
                    picked.update(
                        f
                        for f, name in enumerate(bank.features)
                        if self._bank_source(kind, test, name).key in self.policy.disarmed
                    )
                for f in sorted(picked):
                    name = bank.features[f]
                    window_test = bank.tests(f, statistics, position)[0 if test == "psi" else 1]
                    found.append((self._bank_source(kind, test, name), window_test))

    def _bank_source(self, kind: AlertKind, test: str, name: str) -> _Source:
        return _source(kind, test, None if kind == "prediction_drift" else name, self.config.window)

    def _quality_results(self, tests: list[WindowTest], found: list[tuple[_Source, WindowTest]]) -> None:
        assert self.quality is not None
        for check, test in zip(self.quality.checks, tests, strict=False):
            source = _source("data_quality", check.kind, check.feature, self.quality.window)
            if self._relevant(test, source):
                found.append((source, test))

    def _watch_predictions(
        self, scores: np.ndarray | None, predictions: Sequence[Any], found: list[tuple[_Source, WindowTest]]
    ) -> None:
        values = scores if self._prediction_numeric else [str(p) for p in predictions]
        if values is not None:
            for test in self.prediction.update_many(values).tests:
                source = _source("prediction_drift", test.test, None, self.config.window)
                if self._relevant(test, source):
                    found.append((source, test))
        if self.prediction_streaming is not None and scores is not None:
            for _, test in self.prediction_streaming.update_many(scores.reshape(-1, 1)):
                found.append((_source("prediction_drift", test.test, None, None, resets=True), test))

    # ---------------------------------------------------------------------------------------------- invalid

    def observe_invalid(self, count: int, reasons: Sequence[str], ts_ms: int) -> list[Alert]:
        """Watch ``count`` events that failed validation (schema violations), with their reasons."""
        if count <= 0:
            return []
        self.invalid += count
        self._invalid_reasons.update(reasons)
        if self.quality is None:
            return []
        counts = np.zeros(len(self.quality.checks), dtype=np.int64)
        counts[-1] = count
        found: list[tuple[_Source, WindowTest]] = []
        self._quality_results(self.quality.update(count, counts), found)
        return self._alerts(found, [], None, ts_ms)

    # ---------------------------------------------------------------------------------------------- outcomes

    def observe_outcomes(
        self,
        event_ids: Sequence[str],
        y_true: Sequence[Any],
        y_pred: Sequence[Any],
        probabilities: Sequence[dict[Any, float] | None],
        model_version: int,
        ts_ms: int,
        event_ts: Sequence[int] | None = None,
    ) -> list[Alert]:
        """Watch joined labels (concept drift, realised metric, label lag and coverage); the alerts raised.

        ``event_ts`` (epoch ms of each event) gives the label lag; without it the lag is measured for the events
        this monitor saw scored (the latest ``max_tracked_events``).
        """
        n = len(event_ids)
        if not n:
            return []
        if not len(y_true) == len(y_pred) == n:
            raise ValueError("event_ids, y_true and y_pred must have one entry per outcome")
        self.outcomes += n
        if self.task == "regression":
            errors = np.abs(np.array(y_true, dtype=float) - np.array(y_pred, dtype=float))
        else:
            errors = _errors(y_true, y_pred)
        self.realised.update_many(errors)
        times = list(event_ts) if event_ts is not None else [self._event_ts.get(e) for e in event_ids]
        lags = [ts_ms - t for t in times if t is not None]
        if lags:
            self._label_lag_ms = float(np.median(lags))
        found = [
            (_source("concept_drift", test.test, None, None, resets=True), test)
            for test in self.errors.update_many(errors)
        ]
        return self._alerts(found, event_ids, model_version, ts_ms)

    # ---------------------------------------------------------------------------------------------- alerts

    def _alerts(
        self,
        found: list[tuple[_Source, WindowTest]],
        event_ids: Sequence[str],
        model_version: int | None,
        ts_ms: int,
    ) -> list[Alert]:
        alerts: list[Alert] = []
        for source, test in found:
            if not self._relevant(test, source):
                continue
            result = DetectorResult(
                source.key,
                source.kind,
                source.detector,
                source.feature,
                test.statistic,
                _finite(test.threshold),
                test.score,
                test.samples,
                source.window,
                _finite(test.p_value),
                test.position,
                resets=source.resets,
            )
            severity = self.policy.decide(result, self.events, ts_ms)
            if severity is None:
                continue
            dedup_key = f"{self.model}:{source.kind}:{source.feature or '-'}:{source.detector}"
            ttl_ms = max(1000, int(self.config.cooldown_seconds * 1000))
            if not self.dedup.first(dedup_key, ttl_ms, ts_ms):
                self.duplicates += 1
                continue
            event_id = event_ids[test.position] if event_ids and 0 <= test.position < len(event_ids) else None
            action = choose_action(source.kind, self.config.actions)
            alert_id = hashlib.sha256(f"{self.model}|{source.key}|{event_id}|{self.events}".encode()).hexdigest()
            alerts.append(
                Alert(
                    alert_id=alert_id[:24],
                    kind=source.kind,
                    severity=severity,
                    model=self.model,
                    model_version=model_version,
                    feature=source.feature,
                    detector=source.detector,
                    statistic=_finite(test.statistic),
                    threshold=_finite(test.threshold),
                    window=source.window,
                    event_id=event_id,
                    ts=ts_ms,
                    message=self._message(source, test),
                    action=action,
                )
            )
            self.alerts_fired[(source.kind, severity)] += 1
        return alerts

    def _message(self, source: _Source, test: WindowTest) -> str:
        subject = source.feature or (PREDICTION if source.kind == "prediction_drift" else "error stream")
        if source.kind == "data_quality" and source.detector == "schema":
            top = ", ".join(f"{r} ({c})" for r, c in self._invalid_reasons.most_common(3))
            return f"schema violations at rate {test.statistic:.3%} over {test.samples} events; top reasons: {top}"
        if source.kind == "data_quality":
            return (
                f"{source.detector} rate of {subject} is {test.statistic:.3%} over {test.samples} events "
                f"(alert above {test.threshold:.3%}, p={test.p_value:.2g})"
            )
        if source.kind == "concept_drift":
            return f"{source.detector} detected a change of the error rate after {test.samples} labelled outcomes"
        if source.kind == "performance":
            return (
                f"estimated accuracy {test.statistic:.3f} fell below {test.threshold:.3f} "
                f"(p={test.p_value:.2g}) without labels"
            )
        if math.isfinite(test.p_value):
            return (
                f"{source.detector} of {subject} is {test.statistic:.4g} (threshold {test.threshold:.4g}, "
                f"p={test.p_value:.2g}) over {test.samples} values"
            )
        return f"{source.detector} detected a change in {subject} after {test.samples} values"

    # ---------------------------------------------------------------------------------------------- state

    def recommended_threshold(self) -> float | None:
        """Binary classifiers: the decision threshold on recent scores keeping the reference positive rate."""
        if self._positive_rate is None or not self._recent_scores:
            return None
        scores = np.concatenate(list(self._recent_scores))
        scores = scores[~np.isnan(scores)]
        return recommend_threshold(scores, self._positive_rate) if scores.size else None

    def gauges(self) -> dict[str, Any]:
        """Current statistics for Prometheus (see :class:`driftline.streams.metrics_drift.DriftMetrics`)."""
        detectors: list[dict[str, Any]] = []

        def add(
            kind: str,
            feature: str | None,
            detector: str,
            statistic: float,
            p_value: float | None,
            threshold: float | None,
            score: float | None,
        ) -> None:
            detectors.append(
                {
                    "kind": kind,
                    "feature": feature or "",
                    "detector": detector,
                    "statistic": float(statistic),
                    "p_value": p_value,
                    "threshold": threshold,
                    "score": score,
                }
            )

        for kind, bank in (("data_drift", self.feature_bank), ("prediction_drift", self.prediction.bank)):
            if bank is None:
                continue
            s = bank.statistics
            for f, name in enumerate(bank.features):
                feature = None if kind == "prediction_drift" else name
                for test in ("psi", "ks"):
                    add(
                        kind,
                        feature,
                        test,
                        s[test][f],
                        float(s[f"{test}_p_value"][f]),
                        _finite(float(s[f"{test}_threshold"][f])),
                        float(s[f"{test}_score"][f]),
                    )
                add(kind, feature, "wasserstein", s["wasserstein"][f], None, None, None)
        categorical = [(n, d, "data_drift") for n, d in self.categorical_drift.items()]
        if self.prediction.categorical is not None:
            categorical.append((None, self.prediction.categorical, "prediction_drift"))  # type: ignore[arg-type]
        for name, cat, kind in categorical:
            for test in cat.last:
                add(kind, name, "chi2", test.statistic, test.p_value, _finite(test.threshold), test.score)
            add(kind, name, "jensen_shannon", cat.js_distance, None, None, None)
        for kind, bank in (("data_drift", self.streaming), ("prediction_drift", self.prediction_streaming)):
            for stream, name, statistic, threshold in bank.statistics() if bank is not None else []:
                add(kind, None if stream == PREDICTION else stream, name, statistic, None, _finite(threshold), None)
        for name, stats in self.errors.statistics().items():
            add("concept_drift", None, name, stats["statistic"], None, _finite(stats["threshold"]), None)
        quality = []
        if self.quality is not None:
            for check, rate in zip(self.quality.checks, self.quality.rates, strict=True):
                quality.append(
                    {
                        "feature": check.feature or "",
                        "check": check.kind,
                        "rate": float(rate),
                        "reference_rate": check.reference_rate,
                    }
                )
        estimated = self.confidence.estimate if self.confidence is not None else None
        return {
            "model": self.model,
            "events": self.events,
            "outcomes": self.outcomes,
            "invalid": self.invalid,
            "detectors_budgeted": self.detectors,
            "alpha": self.alpha,
            "learning_reference": self._feature_rows is not None,
            "detectors": detectors,
            "quality": quality,
            "performance": {
                "metric": self.realised.name,
                "rolling": self.realised.value,
                "estimated": estimated,
                "estimated_reference": self.confidence.reference if self.confidence is not None else None,
            },
            "labels": {
                "lag_seconds": None if self._label_lag_ms is None else self._label_lag_ms / 1000,
                "coverage": min(1.0, self.outcomes / self.events) if self.events else None,
            },
            "alerts": [{"kind": k, "severity": s, "count": c} for (k, s), c in sorted(self.alerts_fired.items())],
            "duplicates_suppressed": self.duplicates,
            "dedup_fallbacks": int(getattr(self.dedup, "fallbacks", 0)),
        }

    def _remember(self, event_ids: Sequence[str], ts_ms: int) -> None:
        batch = list(event_ids)
        self._event_ts.update(dict.fromkeys(batch, ts_ms))
        self._ts_batches.append(batch)
        while len(self._event_ts) > self.config.max_tracked_events and len(self._ts_batches) > 1:
            for event_id in self._ts_batches.popleft():
                self._event_ts.pop(event_id, None)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("dedup")
        state["_event_ts"], state["_ts_batches"] = {}, deque()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.dedup = InMemoryDeduplicator()

    def snapshot(self, key: bytes | None = None) -> bytes:
        """Checkpoint of every detector and the policy state; signed with HMAC-SHA256 when ``key`` is given."""
        return seal(self, key)

    @classmethod
    def restore(cls, blob: bytes, key: bytes | None = None, deduplicator: Deduplicator | None = None) -> Monitor:
        """A monitor from :meth:`snapshot`. With ``key``, the blob must carry a valid signature (it is verified
        before anything is unpickled); already-fired alerts stay fired (no alert storm after a restart)."""
        monitor = unseal(blob, key)
        if not isinstance(monitor, cls):
            raise ValueError("checkpoint does not hold a Monitor")
        if deduplicator is not None:
            monitor.dedup = deduplicator
        return monitor


def _errors(y_true: Sequence[Any], y_pred: Sequence[Any]) -> np.ndarray:
    """1.0 where the label differs from the prediction (vectorised when both have one type, e.g. bools)."""
    truth, predicted = np.asarray(y_true), np.asarray(y_pred)
    if truth.dtype == predicted.dtype and truth.dtype.kind in "biu":
        return (truth != predicted).astype(float)
    return np.array([0.0 if _same(t, p) else 1.0 for t, p in zip(y_true, y_pred, strict=True)])


def _is_positive(prediction: Any) -> bool:
    if isinstance(prediction, str):
        return prediction.lower() in ("1", "true", "yes", "positive")
    return bool(prediction)
