"""The detector families a monitor is assembled from, each registered by name with its own budget count.

* ``data_drift``: PSI and KS per numeric feature (:class:`driftline.monitoring.drift_numeric.NumericDriftBank`),
  chi-square per categorical feature (:class:`driftline.monitoring.drift_categorical.CategoricalDrift`), and the
  optional River streaming detectors on block means of the features (:mod:`driftline.monitoring.streaming`);
* ``data_quality``: missing, out-of-range, unseen categories and schema violations
  (:mod:`driftline.monitoring.quality`);
* ``prediction_drift``: the model's output (:mod:`driftline.monitoring.drift_prediction`), and the streaming
  detectors on the score when ``streaming_features`` names ``prediction``;
* ``performance``: the label-free estimate and the realised metric
  (:mod:`driftline.monitoring.performance_estimate`);
* ``concept_drift``: the error stream (:mod:`driftline.monitoring.concept`).

Feature detectors need a reference: from the profile given, else from the first events
(:meth:`learn_reference`). Every family follows :class:`driftline.monitoring.detector.Detector`.

Examples
--------
>>> from driftline.monitoring.config import MonitorConfig
>>> from driftline.monitoring.detector import REGISTRY
>>> scope = Scope("binary", ("x", "y"), ("c",), MonitorConfig(streaming_detectors=("adwin",)))
>>> {name: family.count(scope) for name, family in REGISTRY.items()}
{'data_drift': 7, 'data_quality': 7, 'prediction_drift': 2, 'performance': 1, 'concept_drift': 4}
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from driftline.models.reference import CategoricalProfile, NumericProfile, ReferenceProfile, profile_values
from driftline.monitoring.cbpe import Calibrator, window_metrics
from driftline.monitoring.concept import ErrorStream, detectors_for_task
from driftline.monitoring.detector import (
    EventBatch,
    Finding,
    InvalidBatch,
    Levels,
    Observation,
    OutcomeBatch,
    Scope,
    finite,
    register,
    source,
)
from driftline.monitoring.drift_categorical import CategoricalDrift
from driftline.monitoring.drift_numeric import NumericDriftBank, NumericReference
from driftline.monitoring.drift_prediction import PREDICTION, PredictionDrift
from driftline.monitoring.performance_estimate import ConfidenceEstimate, RealisedMetric
from driftline.monitoring.quality import DataQuality, QualityCheck, out_of_range_rate, unseen_rate
from driftline.monitoring.streaming import StreamingBank
from driftline.monitoring.window import WindowTest

#: Windows of estimated and realised performance kept (the latest).
MAX_WINDOWS = 500

__all__ = ["ConceptDrift", "DataDrift", "DataQualityChecks", "Performance", "PredictionOutput"]


def gauge(
    kind: str,
    feature: str | None,
    detector: str,
    statistic: float,
    p_value: float | None = None,
    threshold: float | None = None,
    score: float | None = None,
) -> dict[str, Any]:
    """One row of the ``detectors`` gauges."""
    return {
        "kind": kind,
        "feature": feature or "",
        "detector": detector,
        "statistic": float(statistic),
        "p_value": p_value,
        "threshold": threshold,
        "score": score,
    }


def present_count(profile: NumericProfile | CategoricalProfile) -> int:
    """Non-missing values a profile was computed from."""
    return max(1, round(profile.count * (1 - profile.missing_rate)))


def streaming_bank(scope: Scope, levels: Levels, streams: dict[str, tuple[float, float]]) -> StreamingBank | None:
    """River's streaming detectors on the streams of ``streams`` (name -> reference mean, std) in scope."""
    cfg = scope.config
    wanted = scope.streaming_scope()
    streams = {name: ref for name, ref in streams.items() if name in wanted}
    if not streams or not cfg.streaming_detectors:
        return None
    return StreamingBank(
        streams,
        cfg.streaming_detectors,
        cfg.streaming_block,
        cfg.kswin_block,
        levels.block_alpha,
        levels.kswin_alpha,
        levels.arl,
    )


def quiet_for(events: int, detector: Any) -> bool:
    """Whether ``events`` more values leave windowed ``detector`` (with ``seen`` and ``hop``) short of its next test.

    >>> from types import SimpleNamespace
    >>> quiet_for(9, SimpleNamespace(seen=240, hop=250)), quiet_for(10, SimpleNamespace(seen=240, hop=250))
    (True, False)
    """
    return events < detector.hop - detector.seen % detector.hop


def piece_starts(pieces: tuple[int, ...]) -> np.ndarray:
    """Where each piece of a grouped batch starts (see :attr:`EventBatch.pieces`).

    >>> piece_starts((3, 1, 2)).tolist()
    [0, 3, 4]
    """
    return np.concatenate([[0], np.cumsum(pieces[:-1], dtype=np.int64)]).astype(np.int64)


def bank_findings(
    kind: str, bank: NumericDriftBank, window: int, batch: EventBatch, out: list[Finding], floor: float
) -> None:
    """The tests of a bank that can change the policy's state (past the re-arm ``floor`` or disarmed)."""
    for position, statistics in bank.evaluations:
        for test in ("psi", "ks"):
            scores = statistics[f"{test}_score"]
            for f, name in enumerate(bank.features):
                feature = None if kind == "prediction_drift" else name
                src = source(kind, test, feature, window)  # type: ignore[arg-type]
                if scores[f] >= floor or batch.relevant(src.key, float(scores[f])):
                    out.append(Finding(src, bank.tests(f, statistics, position)[0 if test == "psi" else 1]))


def bank_gauges(kind: str, bank: NumericDriftBank | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if bank is None:
        return rows
    s = bank.statistics
    for f, name in enumerate(bank.features):
        feature = None if kind == "prediction_drift" else name
        for test in ("psi", "ks"):
            rows.append(
                gauge(
                    kind,
                    feature,
                    test,
                    s[test][f],
                    float(s[f"{test}_p_value"][f]),
                    finite(float(s[f"{test}_threshold"][f])),
                    float(s[f"{test}_score"][f]),
                )
            )
        rows.append(gauge(kind, feature, "wasserstein", s["wasserstein"][f]))
    return rows


def streaming_gauges(kind: str, bank: StreamingBank | None) -> list[dict[str, Any]]:
    if bank is None:
        return []
    return [
        gauge(kind, None if stream == PREDICTION else stream, name, statistic, None, finite(threshold))
        for stream, name, statistic, threshold in bank.statistics()
    ]


def streaming_findings(kind: str, bank: StreamingBank, matrix: np.ndarray) -> list[Finding]:
    return [
        Finding(source(kind, test.test, None if stream == PREDICTION else stream, None, resets=True), test)  # type: ignore[arg-type]
        for stream, test in bank.update_many(matrix)
    ]


@register
class DataDrift:
    """Feature drift: PSI and KS per numeric feature, chi-square per categorical one, optional streaming tests."""

    name: ClassVar[str] = "data_drift"
    gauge_kinds: ClassVar[tuple[str, ...]] = ("data_drift",)

    @classmethod
    def count(cls, scope: Scope) -> int:
        features = [n for n in scope.streaming_scope() if n != PREDICTION]
        return 2 * len(scope.numeric) + len(scope.categorical) + len(features) * len(scope.config.streaming_detectors)

    def quiet(self, events: int) -> bool:
        """No PSI, KS or chi-square test within ``events`` more events (the streaming tests are never grouped)."""
        if self.streaming is not None:
            return False
        if self.bank is not None and not quiet_for(events, self.bank):
            return False
        return all(quiet_for(events, detector) for detector in self.categorical.values())

    def __init__(self, scope: Scope, levels: Levels, reference: ReferenceProfile | None):
        self.scope, self.levels = scope, levels
        self.bank: NumericDriftBank | None = None
        self.bank_columns: list[int] = []
        self.categorical: dict[str, CategoricalDrift] = {}
        self.streaming: StreamingBank | None = None
        self.streaming_columns: list[int] = []
        if reference is not None:
            self.learn_reference(reference)

    def learn_reference(self, profile: ReferenceProfile) -> None:
        cfg, numeric = self.scope.config, list(self.scope.numeric)
        refs: dict[str, NumericReference] = {}
        moments: dict[str, tuple[float, float]] = {}
        for name in numeric:
            feature = profile.features.get(name)
            if isinstance(feature, NumericProfile) and feature.sample:
                refs[name] = NumericReference.of(feature.sample, feature.quantiles)
                moments[name] = (feature.mean, feature.std)
        for name in self.scope.categorical:
            feature = profile.features.get(name)
            if isinstance(feature, CategoricalProfile) and feature.frequencies:
                self.categorical[name] = CategoricalDrift(
                    feature.frequencies, present_count(feature), cfg.window, cfg.hop, self.levels.alpha
                )
        if refs:
            self.bank = NumericDriftBank(refs, cfg.window, cfg.hop, self.levels.alpha)
            self.bank_columns = [numeric.index(name) for name in refs]
        self.streaming = streaming_bank(self.scope, self.levels, moments)
        if self.streaming is not None:
            self.streaming_columns = [numeric.index(name) for name in self.streaming.streams]

    def observe(self, observation: Observation) -> list[Finding]:
        if not isinstance(observation, EventBatch) or observation.learning:
            return []
        batch, cfg = observation, self.scope.config
        found: list[Finding] = []
        if self.bank is not None:
            self.bank.update_many(batch.matrix[:, self.bank_columns])
            bank_findings("data_drift", self.bank, cfg.window, batch, found, cfg.rearm_score)
        for name, detector in self.categorical.items():
            idx = detector.indices(batch.column(name))
            unseen = idx == len(detector.categories)
            if batch.pieces is None:
                batch.unseen[name] = int(np.count_nonzero(unseen))
            else:  # one count per piece (data quality takes a grouped batch piece by piece)
                batch.unseen[name] = np.add.reduceat(unseen.astype(np.int64), piece_starts(batch.pieces)).tolist()
            found += [
                Finding(source("data_drift", "chi2", name, cfg.window), t) for t in detector.update_indices(idx).tests
            ]
        if self.streaming is not None:
            found += streaming_findings("data_drift", self.streaming, batch.matrix[:, self.streaming_columns])
        return found

    def gauges(self) -> dict[str, Any]:
        rows = bank_gauges("data_drift", self.bank)
        for name, detector in self.categorical.items():
            for test in detector.last:
                rows.append(
                    gauge("data_drift", name, "chi2", test.statistic, test.p_value, finite(test.threshold), test.score)
                )
            rows.append(gauge("data_drift", name, "jensen_shannon", detector.js_distance))
        return {"detectors": rows + streaming_gauges("data_drift", self.streaming)}


@register
class DataQualityChecks:
    """Rolling rates of missing values, out-of-range values, unseen categories and schema violations."""

    name: ClassVar[str] = "data_quality"
    gauge_kinds: ClassVar[tuple[str, ...]] = ("quality",)

    @classmethod
    def count(cls, scope: Scope) -> int:
        nf, nc = len(scope.numeric), len(scope.categorical)
        return (nf + nc) + nf + nc + 1  # missing, out of range, unseen, schema

    def quiet(self, events: int) -> bool:
        """No rate test within ``events`` more events."""
        return self.quality is None or self.quality._since + events < self.quality.hop

    def __init__(self, scope: Scope, levels: Levels, reference: ReferenceProfile | None):
        self.scope, self.levels = scope, levels
        self.quality: DataQuality | None = None
        self.lows = np.full(len(scope.numeric), -np.inf)
        self.highs = np.full(len(scope.numeric), np.inf)
        self.range_columns: list[int] = []
        self.known: dict[str, frozenset[str]] = {}  # categorical features with reference categories
        if reference is not None:
            self.learn_reference(reference)

    def learn_reference(self, profile: ReferenceProfile) -> None:
        cfg = self.scope.config
        checks: list[QualityCheck] = []
        for i, name in enumerate(self.scope.numeric):
            feature = profile.features.get(name)
            checks.append(QualityCheck("missing", name, feature.missing_rate if feature is not None else 0.0))
            if isinstance(feature, NumericProfile) and feature.sample:
                self.lows[i], self.highs[i] = feature.minimum, feature.maximum
                self.range_columns.append(i)
        for name in self.scope.categorical:
            feature = profile.features.get(name)
            checks.append(QualityCheck("missing", name, feature.missing_rate if feature is not None else 0.0))
            if isinstance(feature, CategoricalProfile) and feature.frequencies:
                self.known[name] = frozenset(feature.frequencies)
        for i in self.range_columns:
            feature = profile.features[self.scope.numeric[i]]
            checks.append(
                QualityCheck("out_of_range", self.scope.numeric[i], out_of_range_rate(present_count(feature)))
            )
        for name in self.known:
            feature = profile.features[name]
            assert isinstance(feature, CategoricalProfile)
            checks.append(QualityCheck("unseen", name, unseen_rate(feature.frequencies, present_count(feature))))
        checks.append(QualityCheck("schema", None, 1 / (max(profile.rows, 0) + 1)))
        self.quality = DataQuality(checks, cfg.window, cfg.hop, self.levels.alpha, cfg.quality_min_excess)

    def observe(self, observation: Observation) -> list[Finding]:
        if self.quality is None:
            return []
        if isinstance(observation, InvalidBatch):
            counts = np.zeros(len(self.quality.checks), dtype=np.int64)
            counts[-1] = observation.count
            return self._findings(self.quality.update(observation.count, counts), None)
        if not isinstance(observation, EventBatch) or observation.learning:
            return []
        batch = observation
        if batch.pieces is not None:
            return self._observe_pieces(batch, batch.pieces)
        matrix, n = batch.matrix, len(batch.predictions)
        missing = np.isnan(matrix).sum(axis=0) if matrix.size else np.zeros(0, dtype=np.int64)
        cat_missing = [sum(v is None for v in batch.column(name)) for name in self.scope.categorical]
        cols = self.range_columns
        ranged = matrix[:, cols]
        out = ((ranged < self.lows[cols]) | (ranged > self.highs[cols])).sum(axis=0)
        # DataDrift counted them already when it runs (not dict.get: its default would count them again)
        seen = batch.unseen
        unseen = [seen[name] if name in seen else self._unseen(batch.column(name), name) for name in self.known]
        counts = np.concatenate([missing, cat_missing, out, unseen, [0]]).astype(np.int64)
        return self._findings(self.quality.update(n, counts, n - 1), batch)

    def _observe_pieces(self, batch: EventBatch, pieces: tuple[int, ...]) -> list[Finding]:
        """A grouped batch: the counts of each piece at once, then the rates updated piece by piece, as the
        monitor's chunks would have been one at a time (the window holds whole chunks)."""
        assert self.quality is not None
        matrix, starts = batch.matrix, piece_starts(pieces)
        cols = self.range_columns
        ranged = matrix[:, cols]
        flags = [np.isnan(matrix), (ranged < self.lows[cols]) | (ranged > self.highs[cols])]
        missing, out = (np.add.reduceat(f.astype(np.int64), starts, axis=0) for f in flags)
        columns = {name: batch.column(name) for name in self.scope.categorical}
        seen = batch.unseen
        found: list[Finding] = []
        for i, (start, n) in enumerate(zip(starts.tolist(), pieces, strict=True)):
            stop = start + n
            cat_missing = [sum(v is None for v in columns[name][start:stop]) for name in self.scope.categorical]
            unseen = [
                seen[name][i] if name in seen else self._unseen(batch.column(name)[start:stop], name)
                for name in self.known
            ]
            counts = np.concatenate([missing[i], cat_missing, out[i], unseen, [0]]).astype(np.int64)
            found += self._findings(self.quality.update(n, counts, stop - 1), batch)
        return found

    def _unseen(self, values: list[Any], name: str) -> int:
        known = self.known[name]
        return sum(v is not None and v not in known for v in values)

    def _findings(self, tests: list[Any], batch: EventBatch | None) -> list[Finding]:
        assert self.quality is not None
        floor = self.scope.config.rearm_score
        found = []
        for check, test in zip(self.quality.checks, tests, strict=False):
            src = source("data_quality", check.kind, check.feature, self.quality.window)
            if test.score >= floor or batch is None or batch.relevant(src.key, test.score):
                found.append(Finding(src, test))
        return found

    def gauges(self) -> dict[str, Any]:
        rows = []
        if self.quality is not None:
            for check, rate in zip(self.quality.checks, self.quality.rates, strict=True):
                rows.append(
                    {
                        "feature": check.feature or "",
                        "check": check.kind,
                        "rate": float(rate),
                        "reference_rate": check.reference_rate,
                    }
                )
        return {"detectors": [], "quality": rows}


@register
class PredictionOutput:
    """Prediction drift: the score, class or value against a reference of the model's outputs.

    The reference, by ``MonitorConfig.prediction_reference``:

    * ``"model"`` (default): the served version's outputs on a fixed sample of reference *inputs*, scored again
      by the caller whenever another version is served (:meth:`use_reference`). Window and reference then come
      from the same model, so a model that keeps learning does not flag its own learning; what is left is
      output drift caused by the inputs. Until the first reference is scored, nothing is tested;
    * ``"trailing"``: the outputs of a period trailing the window by ``prediction_lag`` events, with an effect
      floor (``prediction_min_effect``);
    * ``"profile"``: the reference profile's prediction, fixed (static models).
    """

    name: ClassVar[str] = "prediction_drift"
    gauge_kinds: ClassVar[tuple[str, ...]] = ("prediction_drift",)

    @classmethod
    def count(cls, scope: Scope) -> int:
        streaming = PREDICTION in scope.streaming_scope()
        return (2 if scope.prediction_numeric else 1) + streaming * len(scope.config.streaming_detectors)

    def quiet(self, events: int) -> bool:
        """No output test within ``events`` more events (the trailing reference and streaming tests are never
        grouped: the trailing reference keeps the outputs batch by batch)."""
        drift = self.drift
        if self.streaming is not None or (drift is not None and drift.lag is not None):
            return False
        window = None if drift is None else drift.bank if drift.bank is not None else drift.categorical
        return window is None or quiet_for(events, window)

    def __init__(self, scope: Scope, levels: Levels, reference: ReferenceProfile | None):
        self.scope, self.levels = scope, levels
        self.streaming: StreamingBank | None = None
        mode = scope.config.prediction_reference
        self.drift: PredictionDrift | None = self._drift(None, trailing=True) if mode == "trailing" else None
        profile = reference.prediction if reference is not None else None
        if profile is not None and (profile.kind == "numeric") == scope.prediction_numeric:
            if mode == "profile":
                self.drift = self._drift(profile)
            if isinstance(profile, NumericProfile) and profile.sample:
                self.streaming = streaming_bank(scope, levels, {PREDICTION: (profile.mean, profile.std)})
        #: The served version the ``"model"`` reference was scored by.
        self.version: int | None = None

    def _drift(self, profile: NumericProfile | CategoricalProfile | None, trailing: bool = False) -> PredictionDrift:
        cfg = self.scope.config
        return PredictionDrift(
            "numeric" if self.scope.prediction_numeric else "categorical",
            cfg.window,
            cfg.hop,
            self.levels.alpha,
            lag=cfg.prediction_lag if trailing else None,
            reference_size=cfg.reference_events,
            initial=profile,
            probability=self.scope.task == "binary",
        )

    def reference_due(self, version: int) -> bool:
        """The ``"model"`` reference must be scored by ``version`` (another version is served)."""
        return self.scope.config.prediction_reference == "model" and version != self.version

    def use_reference(self, version: int, outputs: np.ndarray | list[str]) -> None:
        """The outputs of ``version`` on the reference inputs: the reference from now on (a fresh window)."""
        kind = "numeric" if self.scope.prediction_numeric else "categorical"
        values = outputs.tolist() if isinstance(outputs, np.ndarray) else list(outputs)
        self.drift = self._drift(profile_values(values, kind))  # type: ignore[arg-type]
        self.version = version

    def learn_reference(self, profile: ReferenceProfile) -> None:
        """Output references come from the model (see the class docstring)."""

    def observe(self, observation: Observation) -> list[Finding]:
        if not isinstance(observation, EventBatch):
            return []
        batch, window = observation, self.scope.config.window
        values = batch.scores if self.scope.prediction_numeric else [str(p) for p in batch.predictions]
        found: list[Finding] = []
        if values is not None and self.drift is not None:
            floor = self.scope.config.rearm_score
            for test in self._effect_gated(self.drift.update_many(values).tests):
                src = source("prediction_drift", test.test, None, window)
                if test.score >= floor or batch.relevant(src.key, test.score):
                    found.append(Finding(src, test))
        if self.streaming is not None and batch.scores is not None:
            found += streaming_findings("prediction_drift", self.streaming, batch.scores.reshape(-1, 1))
        return found

    def _effect_gated(self, tests: list[WindowTest]) -> list[WindowTest]:
        """Against the trailing reference, a test is past its threshold only with a large enough effect too
        (``prediction_min_effect``: PSI, KS distance, Jensen-Shannon distance for classes)."""
        floors = self.scope.config.prediction_min_effect
        if self.drift is None or self.drift.lag is None or not floors:
            return tests
        gated = []
        for test in tests:
            floor = floors.get(test.test)
            if not floor:
                gated.append(test)
                continue
            effect = self.drift.categorical.js_distance if self.drift.categorical is not None else test.statistic
            threshold = test.threshold if test.test == "chi2" else max(test.threshold, floor)
            gated.append(replace(test, score=min(test.score, effect / floor), threshold=threshold))
        return gated

    def gauges(self) -> dict[str, Any]:
        drift = self.drift
        rows = bank_gauges("prediction_drift", drift.bank if drift is not None else None)
        if drift is not None and drift.categorical is not None:
            for test in drift.categorical.last:
                rows.append(
                    gauge(
                        "prediction_drift",
                        None,
                        "chi2",
                        test.statistic,
                        test.p_value,
                        finite(test.threshold),
                        test.score,
                    )
                )
            rows.append(gauge("prediction_drift", None, "jensen_shannon", drift.categorical.js_distance))
        return {"detectors": rows + streaming_gauges("prediction_drift", self.streaming)}


@register
class Performance:
    """Model performance: the label-free estimate (classifiers) and the realised metric once labels arrive.

    Binary classifiers get CBPE (:mod:`driftline.monitoring.cbpe`): on the labelled side, every
    ``performance_window`` outcomes form a window with its estimated metrics (from the calibrated scores alone,
    with the calibrator fitted *before* the window) beside the realised ones (:attr:`windows`); the calibrator is
    fitted again on the latest ``performance_window`` labelled outcomes when another version shows up, at most
    once per ``calibration_every`` labelled outcomes. On the
    scoring side the alert tests the estimated accuracy per window of predictions
    (:class:`driftline.monitoring.performance_estimate.ConfidenceEstimate`) on calibrated expected correctness once
    a calibrator is given (:meth:`use_calibration`), on the top-class probability before. The learner registers
    its calibrator with each version it snapshots, and the scoring monitor takes a version's calibrator at the first
    event that version served in its event-time ordered stream (``Monitor.calibration_due``), so the estimate
    depends on the events and the versions that served them, not on when the calibrator reached a worker.
    """

    name: ClassVar[str] = "performance"
    gauge_kinds: ClassVar[tuple[str, ...]] = ("performance",)
    #: Labelled outcomes since the calibrator was last fitted (a class default: monitors checkpointed before it).
    since_calibration: int = 0

    @classmethod
    def count(cls, scope: Scope) -> int:
        return 0 if scope.task == "regression" else 1

    def quiet(self, events: int) -> bool:
        """No estimate test within ``events`` more events (NaN confidences only delay it)."""
        return self.estimate is None or quiet_for(events, self.estimate)

    def __init__(self, scope: Scope, levels: Levels, reference: ReferenceProfile | None):
        cfg = scope.config
        self.scope = scope
        self.realised = RealisedMetric(scope.task, cfg.performance_window)
        self.estimate = (
            None
            if scope.task == "regression"
            else ConfidenceEstimate(cfg.performance_window, cfg.hop, levels.alpha, cfg.performance_tolerance)
        )
        self.calibrator: Calibrator | None = None
        self.calibrated_version: int | None = None
        #: Per window of labelled outcomes: ``{"end_event_id", "estimated": {...}, "realised": {...}}``.
        self.windows: deque[dict[str, Any]] = deque(maxlen=MAX_WINDOWS)
        self._labelled: deque[tuple[np.ndarray, np.ndarray]] = deque()  # (scores, positives) of recent outcomes
        self._window: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]] = []
        self._window_n = 0

    def learn_reference(self, profile: ReferenceProfile) -> None:
        """The estimate's reference is the first full window of confidences."""

    def use_calibration(self, calibrator: Calibrator) -> None:
        """Estimate with ``calibrator`` from the next event on (the scoring side: at the first event of the version
        it was registered with). The first calibrator changes the scale of what is estimated (top-class probability
        to calibrated correctness): the reference window is learnt again from that event; later refits move it
        little and keep the reference."""
        if self.calibrator is None and self.estimate is not None:
            self.estimate.reset_reference()
        self.calibrator = calibrator

    def observe(self, observation: Observation) -> list[Finding]:
        if isinstance(observation, OutcomeBatch):
            self.realised.update_many(observation.errors)
            if observation.scores is not None and observation.positives is not None:
                self._labelled_outcomes(observation)
            return []
        if not isinstance(observation, EventBatch) or self.estimate is None or observation.confidences is None:
            return []
        confidences = observation.confidences
        if self.calibrator is not None and observation.scores is not None:
            p = self.calibrator.transform(observation.scores)
            confidences = np.where(observation.scores >= self.calibrator.threshold, p, 1 - p)
        src = source("performance", "cbpe", None, self.scope.config.performance_window)
        return [Finding(src, t) for t in self.estimate.update_many(confidences).tests]

    def _labelled_outcomes(self, batch: OutcomeBatch) -> None:
        assert batch.scores is not None and batch.positives is not None
        size = self.scope.config.performance_window
        predicted = batch.predicted if batch.predicted is not None else batch.scores >= 0.5
        if batch.version is not None and batch.version != self.calibrated_version and self._calibration_due():
            scores, positives = self._recent()
            if scores.size >= size:
                self.use_calibration(Calibrator.fit(scores[-size:], positives[-size:]))
                self.calibrated_version, self.since_calibration = batch.version, 0
        self.since_calibration += len(batch.scores)
        self._labelled.append((batch.scores, batch.positives))
        kept = sum(len(s) for s, _ in self._labelled)
        while len(self._labelled) > 1 and kept - len(self._labelled[0][0]) >= size:
            kept -= len(self._labelled.popleft()[0])
        start = 0
        ids = list(batch.event_ids) or [""] * len(batch.scores)
        while start < len(batch.scores):
            take = min(size - self._window_n, len(batch.scores) - start)
            part = slice(start, start + take)
            self._window.append((batch.scores[part], batch.positives[part], predicted[part], ids[part]))
            self._window_n += take
            start += take
            if self._window_n == size:
                self._close_window()

    def _calibration_due(self) -> bool:
        """No calibrator yet, or ``calibration_every`` labelled outcomes since the last fit."""
        return self.calibrator is None or self.since_calibration >= self.scope.config.calibration_every

    def _recent(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._labelled:
            return np.zeros(0), np.zeros(0, dtype=bool)
        return np.concatenate([s for s, _ in self._labelled]), np.concatenate([p for _, p in self._labelled])

    def _close_window(self) -> None:
        scores = np.concatenate([w[0] for w in self._window])
        positives = np.concatenate([w[1] for w in self._window])
        predicted = np.concatenate([w[2] for w in self._window])
        end_event_id = self._window[-1][3][-1] if self._window[-1][3] else None
        self._window, self._window_n = [], 0
        if self.calibrator is None:
            return  # no labelled reference before this window: nothing to estimate from
        estimated, realised_ = window_metrics(self.calibrator, scores, positives, predicted)
        self.windows.append(
            {"end_event_id": end_event_id, "estimated": _rounded(estimated), "realised": _rounded(realised_)}
        )

    def gauges(self) -> dict[str, Any]:
        estimate_ = self.estimate
        return {
            "detectors": [],
            "performance": {
                "metric": self.realised.name,
                "rolling": self.realised.value,
                "estimated": estimate_.estimate if estimate_ is not None else None,
                "estimated_reference": estimate_.reference if estimate_ is not None else None,
            },
        }


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly: floats to 4 decimals, NaN to None."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            out[key] = _rounded(value)
        elif isinstance(value, float):
            out[key] = round(value, 4) if np.isfinite(value) else None
        else:
            out[key] = value
    return out


@register
class ConceptDrift:
    """Concept drift: changes of the error rate once labels are joined."""

    name: ClassVar[str] = "concept_drift"
    gauge_kinds: ClassVar[tuple[str, ...]] = ("concept_drift",)

    @classmethod
    def count(cls, scope: Scope) -> int:
        return len(detectors_for_task(scope.task, scope.config.error_detectors))

    def quiet(self, events: int) -> bool:
        """Scored events are not its input."""
        return True

    def __init__(self, scope: Scope, levels: Levels, reference: ReferenceProfile | None):
        cfg = scope.config
        self.errors = ErrorStream(
            scope.task, cfg.error_detectors, alpha=levels.error_alpha, arl=levels.arl, grace=cfg.error_grace
        )

    def learn_reference(self, profile: ReferenceProfile) -> None:
        """The error baseline is learnt from the error stream."""

    def observe(self, observation: Observation) -> list[Finding]:
        if not isinstance(observation, OutcomeBatch):
            return []
        return [
            Finding(source("concept_drift", test.test, None, None, resets=True), test)
            for test in self.errors.update_many(
                observation.errors if observation.concept_errors is None else observation.concept_errors
            )
        ]

    def gauges(self) -> dict[str, Any]:
        return {
            "detectors": [
                gauge("concept_drift", None, name, stats["statistic"], None, finite(stats["threshold"]))
                for name, stats in self.errors.statistics().items()
            ]
        }
