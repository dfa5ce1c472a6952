"""The monitor of one model: every detector, the alert policy and deduplication behind three calls.

The scoring agent calls :meth:`Monitor.observe_events` once per scored batch and :meth:`Monitor.observe_invalid`
for dead-lettered events; the learning agent calls :meth:`Monitor.observe_outcomes` with joined labels. Each
returns the :class:`driftline.contract.records.Alert` records to publish on ``alerts``. Pure logic, no I/O (the
deduplicator may be Redis-backed, see :mod:`driftline.monitoring.dedup`).

The monitor is a facade: the detector families named in ``MonitorConfig.detectors`` are assembled from the
registry (:mod:`driftline.monitoring.detector`, :mod:`driftline.monitoring.families`), each declaring its share of
one fleet-wide false-alarm budget (:mod:`driftline.monitoring.budget`); alerts are built by
:mod:`driftline.monitoring.alerting`, gauges by :mod:`driftline.monitoring.gauges`. What is watched:

* data drift per feature: numeric features by windowed PSI and KS (:mod:`driftline.monitoring.drift_numeric`),
  categorical ones by chi-square with Jensen-Shannon distance (:mod:`driftline.monitoring.drift_categorical`), and
  optionally River's ADWIN / Page-Hinkley / KSWIN on block means (:mod:`driftline.monitoring.streaming`);
* prediction drift: the positive-class score (binary), the predicted class (multiclass) or the predicted value
  (regression), against the served version's outputs on a sample of reference inputs, which the caller scores
  again for every version (:meth:`Monitor.prediction_reference_due`, :meth:`Monitor.set_prediction_reference`;
  :mod:`driftline.monitoring.drift_prediction`);
* concept drift on the error stream, degradation only (:mod:`driftline.monitoring.concept`); CBPE
  (:mod:`driftline.monitoring.cbpe`): per window of labels the estimated metrics beside the realised ones
  (:meth:`Monitor.performance_windows`), and the label-free accuracy estimate that alerts
  (:mod:`driftline.monitoring.performance_estimate`), calibrated once a calibrator is given
  (:meth:`Monitor.use_calibration`: the scoring monitor takes the one registered with each served version, from
  that version's first event on, :meth:`Monitor.calibration_due`);
* data quality (:mod:`driftline.monitoring.quality`): missing, out-of-range, unseen categories, schema violations.

Without a reference profile the monitor learns one from the first ``reference_events`` events, then tests.
Time is event time: ``ts_ms`` are the events' (labels') timestamps, which drive cooldowns, dedup and alert
timestamps, and a batch is watched in chunks ending at multiples of ``hop`` events, so the alerts do not depend on
how the stream was batched.
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
data_quality x out_of_range critical e5249
data_drift x psi critical e5249
>>> Monitor.restore(monitor.snapshot()).gauges()["events"]
10000
>>> list(monitor.families)  # the detector families, registered by name (driftline.monitoring.families)
['data_drift', 'data_quality', 'prediction_drift', 'performance', 'concept_drift']
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from operator import itemgetter
from typing import Any

import numpy as np

from driftline.contract.records import Alert
from driftline.contract.signing import Keyring
from driftline.models.feature_columns import FeatureColumns
from driftline.models.features import FeatureSchema
from driftline.models.probability_rows import ProbabilityRows
from driftline.models.reference import NumericProfile, ReferenceProfile
from driftline.models.specs import TASKS
from driftline.monitoring import families
from driftline.monitoring.actions import recommend_threshold
from driftline.monitoring.alerting import AlertBuilder
from driftline.monitoring.cbpe import Calibrator
from driftline.monitoring.checkpoint import seal, unseal
from driftline.monitoring.config import MonitorConfig
from driftline.monitoring.dedup import Deduplicator, InMemoryDeduplicator
from driftline.monitoring.detector import (
    REGISTRY,
    Detector,
    EventBatch,
    Finding,
    InvalidBatch,
    Levels,
    Observation,
    OutcomeBatch,
    Scope,
)
from driftline.monitoring.gauges import monitor_gauges
from driftline.monitoring.history import History
from driftline.monitoring.window import hop_chunks

__all__ = ["Monitor", "MonitorConfig", "assemble"]

_NAN = float("nan")
#: Chunks of up to this many scored events may wait to be observed with later ones (see
#: :meth:`Monitor.observe_events`); a larger one amortises the families' fixed costs itself.
GROUP_BELOW = 64
assert families.__name__  # the registry is filled by importing the families


def assemble(
    scope: Scope, reference: ReferenceProfile | None, names: Sequence[str] | None = None
) -> tuple[dict[str, Detector], Levels]:
    """The detector families ``names`` (default: the config's) and the budget's levels for their total count."""
    cfg = scope.config
    names = list(cfg.detectors if names is None else names)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown detector families {unknown}; registered: {sorted(REGISTRY)}")
    count = sum(REGISTRY[n].count(scope) for n in names)  # type: ignore[attr-defined]
    levels = Levels.of(cfg.budget(), max(1, count), cfg.hop, cfg.streaming_block, cfg.kswin_block)
    return {n: REGISTRY[n](scope, levels, reference) for n in names}, levels


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

    #: The served version whose calibrator the scoring side looked up last (:meth:`calibration_due`; a class
    #: default: monitors checkpointed before it look it up again at their next event).
    calibration_version: int | None = None

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
        self.numeric, self.categorical = schema.numeric, schema.categorical
        self.scope = Scope(task, tuple(self.numeric), tuple(self.categorical), config)
        self._families, self.levels = assemble(self.scope, reference)
        self.alerting = AlertBuilder(model, config, deduplicator)
        self.events = self.outcomes = self.invalid = 0
        self.reference = reference
        self._feature_rows: list[dict[str, Any]] | None = None if reference is not None else []
        self._input_rows: list[dict[str, Any]] | None = []
        #: A sample of the first ``reference_events`` inputs, which every served version scores for the
        #: prediction-drift reference (see :meth:`prediction_reference_due`); None until collected.
        self.reference_inputs: list[dict[str, Any]] | None = None
        self._positive_rate: float | None = None
        self._positive_class: Any = None
        self._recent_scores: deque[np.ndarray] = deque(maxlen=max(1, config.window // 100))
        self._label_lag_ms: float | None = None
        #: Event time (epoch ms) of the latest event or outcome: the clock of cooldowns and dedup.
        self.event_time = -(2**62)
        self._getter = itemgetter(*self.numeric) if self.numeric else None
        #: Keep the event time of each event scored (the label lag of outcomes given without ``event_ts``); a
        #: monitor that never sees outcomes (the worker's scoring monitor) need not.
        self.track_event_times = True
        self._event_ts: dict[str, int] = {}
        self._ts_batches: deque[list[str]] = deque()
        self.history, self.outcome_history = _histories(config)
        #: Chunks of scored events waiting to be observed with later ones (see :meth:`observe_events`).
        self._pending: list[tuple[EventBatch, Sequence[str], np.ndarray]] = []
        self._pending_events = 0
        prediction = reference.prediction if reference is not None else None
        if isinstance(prediction, NumericProfile) and prediction.sample and task == "binary":
            self._positive_rate = float(np.mean(np.asarray(prediction.sample) >= 0.5))

    # ---------------------------------------------------------------------------------------------- budget

    #: Group the chunks on which no family can test and observe them at the next one that can (see
    #: :meth:`observe_events`); False observes every chunk as it comes (the same alerts and state, slower).
    group_events = True

    @property
    def families(self) -> dict[str, Detector]:
        """The detector families by name (:func:`assemble`), every scored event observed."""
        self._settle()
        return self._families

    @property
    def detectors(self) -> int:
        """Tests the false-alarm budget is split over (each family declares its own count)."""
        return self.levels.detectors

    @property
    def alpha(self) -> float:
        """Level of one windowed test."""
        return self.levels.alpha

    @property
    def duplicates(self) -> int:
        """Alerts another worker raised first (suppressed here)."""
        return self.alerting.duplicates

    def prediction_reference_due(self, version: int) -> bool:
        """True when ``version`` must score :attr:`reference_inputs` for :meth:`set_prediction_reference` (the
        reference inputs are collected and another version is served than the one that scored them)."""
        family = self._families.get("prediction_drift")
        return self.reference_inputs is not None and family is not None and family.reference_due(version)  # type: ignore[attr-defined]

    def set_prediction_reference(
        self, version: int, predictions: Sequence[Any], probabilities: Sequence[dict[Any, float] | None]
    ) -> None:
        """The outputs of ``version`` on :attr:`reference_inputs`: the prediction-drift reference from now on."""
        family = self.families.get("prediction_drift")  # the events before it are observed first
        if family is None:
            return
        scores, _ = self._outputs(predictions, probabilities)
        outputs = scores if self.scope.prediction_numeric and scores is not None else [str(p) for p in predictions]
        family.use_reference(version, outputs)  # type: ignore[attr-defined]

    def _collect_inputs(self, rows: Sequence[dict[str, Any]]) -> None:
        assert self._input_rows is not None
        self._input_rows.extend(rows)
        if len(self._input_rows) >= self.config.reference_events:
            step = max(1, len(self._input_rows) // self.config.reference_inputs)
            self.reference_inputs = self._input_rows[::step][: self.config.reference_inputs]
            self._input_rows = None

    def _observe(self, observation: Observation) -> list[Finding]:
        found: list[Finding] = []
        for family in self._families.values():
            found += family.observe(observation)
        return found

    def _quiet(self, events: int) -> bool:
        """Whether ``events`` more scored events run no test in any family (each says, or is never grouped)."""
        cfg = self.config
        if not (self.group_events and cfg.hop < cfg.window and cfg.hop < cfg.performance_window):
            return False  # a grouped batch stays shorter than every window: the rings fill as chunk by chunk
        for family in self._families.values():
            quiet = getattr(family, "quiet", None)
            if quiet is None or not quiet(events):
                return False
        return True

    def _fits(self, batch: EventBatch) -> bool:
        """Whether ``batch`` can join the pending chunks in one batch (the same outputs given)."""
        if not self._pending:
            return True
        first = self._pending[0][0]
        return (first.scores is None) == (batch.scores is None) and (first.confidences is None) == (
            batch.confidences is None
        )

    def _grouped(self, batches: list[EventBatch]) -> EventBatch:
        """One batch of consecutive chunks, their lengths in ``pieces``."""
        first = batches[0]
        if len(batches) == 1:
            return first
        grouped = EventBatch(
            [f for b in batches for f in b.features],
            np.concatenate([b.matrix for b in batches]),
            [p for b in batches for p in b.predictions],
            None if first.scores is None else np.concatenate([b.scores for b in batches]),  # type: ignore[misc]
            None if first.confidences is None else np.concatenate([b.confidences for b in batches]),  # type: ignore[misc]
            False,
            first.relevant,
            pieces=tuple(len(b.predictions) for b in batches),
        )
        grouped._columns.update({name: [v for b in batches for v in b.column(name)] for name in self.categorical})
        return grouped

    def _settle(self) -> list[Alert]:
        """Observe the pending chunks now (no family tests on them: nothing fires, the state catches up)."""
        if not self._pending:
            return []
        pending, self._pending, self._pending_events = self._pending, [], 0
        found = self._observe(self._grouped([p[0] for p in pending]))
        clock = np.concatenate([p[2] for p in pending])
        return self.alerting.build(found, [i for p in pending for i in p[1]], None, self.events, _at(clock, 0))

    # ---------------------------------------------------------------------------------------------- events

    def observe_events(
        self,
        event_ids: Sequence[str],
        features: Sequence[dict[str, Any]] | None,
        predictions: Sequence[Any],
        probabilities: Sequence[dict[Any, float] | None],
        model_version: int,
        ts_ms: int | Sequence[int],
        frame: Any = None,
        columns: FeatureColumns | None = None,
    ) -> list[Alert]:
        """Watch a scored batch (``features`` as prepared by the schema); the alerts it raises.

        ``ts_ms``: the events' event times (epoch ms, one per event, or one for the batch). ``frame``, optional:
        the pandas DataFrame the scorer built from ``features`` for ``predict_proba_many``; the numeric columns
        are then read from it instead of from the dicts (cheaper). ``columns``, optional: the same features as
        :class:`~driftline.models.feature_columns.FeatureColumns` (the scorer's); the detectors then read them
        and ``features`` may be None (the dicts are built from the columns only while the reference is
        collected). The batch is watched in chunks ending at multiples of ``hop`` events, so the alerts do not
        depend on how the caller batched the stream. A chunk of up to :data:`GROUP_BELOW` events on which no family
        would test waits and is observed with the next chunk that reaches a test or the hop's end (each family's
        NumPy work once per hop, not once per call); the alerts, their events and the state are the same.
        """
        n = len(event_ids)
        if not n:
            return []
        if features is None and columns is None:
            raise ValueError("observe_events needs the features as dicts or as columns")
        if not len(features if features is not None else columns) == len(predictions) == len(probabilities) == n:  # type: ignore[arg-type]
            raise ValueError("event_ids, features, predictions and probabilities must have one entry per event")
        clock = self._clock(ts_ms, n)
        if frame is not None:
            matrix = self._frame_matrix(frame)
        elif columns is not None:
            matrix = self._columns_matrix(columns)
        else:
            matrix = self._numeric_matrix(features)  # type: ignore[arg-type]
        if features is None and (self._input_rows is not None or self._feature_rows is not None):
            features = columns.rows()  # type: ignore[union-attr]
        scores, confidences = self._outputs(predictions, probabilities)
        alerts: list[Alert] = []
        for a, b, hop_end in hop_chunks(self.events, n, self.config.hop):
            self.events += b - a
            ids = event_ids[a:b]
            if self.track_event_times:
                self._remember(ids, clock[a:b])
            rows = features[a:b] if features is not None else ()
            if self._input_rows is not None:
                self._collect_inputs(rows)
            learning = self._feature_rows is not None
            if learning:
                self._learn_features(rows)
            batch = EventBatch(
                rows,
                matrix[a:b],
                predictions[a:b],
                None if scores is None else scores[a:b],
                None if confidences is None else confidences[a:b],
                learning,
                self.alerting.relevant,
            )
            if features is None:  # the categorical values as EventBatch.column reads them from the dicts
                batch._columns.update(self._categorical_columns(columns, a, b))  # type: ignore[arg-type]
            fits = self._fits(batch)
            small = b - a <= GROUP_BELOW
            if small and not hop_end and not learning and fits and self._quiet(self._pending_events + b - a):
                self._pending.append((batch, ids, clock[a:b]))  # no test in it: observed with a later chunk
                self._pending_events += b - a
                continue
            if not self._pending or not fits:
                alerts += self._settle()
                found = self._observe(batch)
                alerts += self.alerting.build(found, ids, model_version, self.events, _at(clock, a))
                continue
            pending, self._pending, self._pending_events = self._pending, [], 0
            found = self._observe(self._grouped([p[0] for p in pending] + [batch]))
            ids = [i for p in pending for i in p[1]] + list(ids)
            at = _at(np.concatenate([p[2] for p in pending] + [clock[a:]]), 0)
            alerts += self.alerting.build(found, ids, model_version, self.events, at)
        if self.scope.prediction_numeric and scores is not None:
            self._recent_scores.append(scores)
        self.history.observe(self.events, self.event_time, self.gauges)
        return alerts

    def _clock(self, ts_ms: int | Sequence[int], n: int) -> np.ndarray:
        """The monitor's event-time clock at each of ``n`` events: the latest event time seen so far (a late
        event does not move it back; one far in the future moves it on, which only shortens cooldowns)."""
        times = np.full(n, ts_ms, dtype=np.int64) if isinstance(ts_ms, int | np.integer) else np.asarray(ts_ms)
        if times.shape != (n,):
            raise ValueError("ts_ms must be one event time or one per event")
        clock = np.maximum.accumulate(np.maximum(times.astype(np.int64), self.event_time))
        self.event_time = int(clock[-1])
        return clock

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

    def _columns_matrix(self, columns: FeatureColumns) -> np.ndarray:
        """The numeric matrix of :meth:`_numeric_matrix` from the columns (NaN where missing, as in the dicts)."""
        n = len(columns)
        if not self.numeric:
            return np.empty((n, 0))
        missing = np.full(n, _NAN)
        return np.column_stack([columns.numeric.get(name, missing) for name in self.numeric]).reshape(
            n, len(self.numeric)
        )

    def _categorical_columns(self, columns: FeatureColumns, a: int, b: int) -> dict[str, list[Any]]:
        """Rows ``a:b`` of each categorical feature, None where missing (what ``dict.get`` reads of the rows)."""
        return {
            name: columns.categorical[name][a:b] if name in columns.categorical else [None] * (b - a)
            for name in self.categorical
        }

    def _frame_matrix(self, frame: Any) -> np.ndarray:
        n = len(frame)
        if list(frame.columns) == self.numeric:
            return frame.to_numpy(dtype=float)
        columns = set(frame.columns)
        return np.column_stack(
            [frame[c].to_numpy(dtype=float) if c in columns else np.full(n, _NAN) for c in self.numeric]
        ).reshape(n, len(self.numeric))

    def _outputs(
        self,
        predictions: Sequence[Any],
        probabilities: Sequence[dict[Any, float] | None],
        confidences: bool = True,
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Scores (the numeric output tested for drift) and confidences (top-class probabilities; of a binary
        classifier's scores only when ``confidences``)."""
        if self.task == "regression":
            return np.array([_NAN if p is None else float(p) for p in predictions], dtype=float), None
        dense = isinstance(probabilities, ProbabilityRows) and bool(probabilities.classes)  # a matrix: by column
        if self.task == "multiclass":
            if dense:
                return None, probabilities.highest()  # type: ignore[union-attr]
            conf = np.array([max(p.values()) if p else _NAN for p in probabilities], dtype=float)
            return None, conf
        if self._positive_class is None:
            first = probabilities[0] if dense and len(probabilities) else next((p for p in probabilities if p), None)
            if first is not None:
                self._positive_class = sorted(first, key=str)[-1]
        positive = self._positive_class
        if positive is None:  # no probabilities at all: the 0/1 decision is the score
            scores = np.array([1.0 if _is_positive(p) else 0.0 for p in predictions], dtype=float)
            return scores, None
        scores = (
            probabilities.column(positive).astype(float)  # type: ignore[union-attr]
            if dense
            else _positive_scores(probabilities, positive)
        )
        return scores, np.maximum(scores, 1 - scores) if confidences else None

    def _learn_features(self, features: Sequence[dict[str, Any]]) -> None:
        assert self._feature_rows is not None
        self._feature_rows.extend(features)
        if len(self._feature_rows) >= self.config.reference_events:
            profile = ReferenceProfile.from_rows(self._feature_rows, self.schema)
            self.reference = profile if self.reference is None else self.reference
            self._feature_rows = None
            for family in self._families.values():
                family.learn_reference(profile)

    # ---------------------------------------------------------------------------------------------- invalid

    def observe_invalid(self, count: int, reasons: Sequence[str], ts_ms: int | None = None) -> list[Alert]:
        """Watch ``count`` events that failed validation (schema violations), with their reasons. They have no
        trustworthy event time: by default they happen at the monitor's clock (the latest event time seen)."""
        if count <= 0:
            return []
        settled = self._settle()
        self.invalid += count
        self.alerting.invalid_reasons.update(reasons)
        ts = self.event_time if ts_ms is None else int(self._clock(ts_ms, 1)[0])
        return settled + self.alerting.build(self._observe(InvalidBatch(count)), [], None, self.events, ts)

    # ---------------------------------------------------------------------------------------------- outcomes

    def observe_outcomes(
        self,
        event_ids: Sequence[str],
        y_true: Sequence[Any],
        y_pred: Sequence[Any],
        probabilities: Sequence[dict[Any, float] | None],
        model_version: int,
        ts_ms: int | Sequence[int],
        event_ts: Sequence[int] | None = None,
        concept_predictions: Sequence[Any] | None = None,
    ) -> list[Alert]:
        """Watch joined labels (concept drift, realised metric, label lag and coverage); the alerts raised.

        ``ts_ms``: the labels' event times (one per outcome, or one for the batch). ``event_ts`` (epoch ms of
        each labelled event) gives the label lag; without it the lag is measured for the events this monitor saw
        scored (the latest ``max_tracked_events``). ``concept_predictions``: what the concept-drift detectors
        compare the labels with, when not ``y_pred`` (the learner's frozen model,
        :mod:`driftline.streams.staged_learning`); the realised metric and CBPE keep ``y_pred``, what was served.
        """
        n = len(event_ids)
        if not n:
            return []
        if not len(y_true) == len(y_pred) == n:
            raise ValueError("event_ids, y_true and y_pred must have one entry per outcome")
        if concept_predictions is not None and len(concept_predictions) != n:
            raise ValueError("concept_predictions must have one entry per outcome")
        settled = self._settle()
        self.outcomes += n
        truth, served = np.asarray(y_true), np.asarray(y_pred)  # each converted once
        errors = self._error_values(y_true, y_pred, truth, served)
        concept = None if concept_predictions is None else self._error_values(y_true, concept_predictions, truth)
        labelled = np.full(n, ts_ms, dtype=np.int64) if isinstance(ts_ms, int | np.integer) else np.asarray(ts_ms)
        lag = _label_lag(labelled, event_ts) if event_ts is not None else None
        if lag is None:
            times = list(event_ts) if event_ts is not None else [self._event_ts.get(e) for e in event_ids]
            lags = [int(at) - t for at, t in zip(labelled.tolist(), times, strict=True) if t is not None]
            lag = float(np.median(lags)) if lags else None
        if lag is not None:
            self._label_lag_ms = lag
        clock = self._clock(labelled, n)
        batch = self._outcome_batch(event_ids, y_true, y_pred, probabilities, errors, model_version, truth, served)
        found = self._observe(replace(batch, concept_errors=concept))
        alerts = self.alerting.build(found, event_ids, model_version, self.events, _at(clock, 0))
        self.outcome_history.observe(self.outcomes, self.event_time, self._outcome_gauges)
        return settled + alerts

    def _outcome_gauges(self) -> dict[str, Any]:
        """The part of :meth:`gauges` :attr:`outcome_history` keeps (its rows are the same): the detectors and
        performance of the families whose ``gauge_kinds`` it records (or that do not say), not the data-drift
        and quality gauges of every feature, which it drops."""
        kinds = self.outcome_history.kinds
        detectors: list[dict[str, Any]] = []
        quality: list[dict[str, Any]] = []
        performance: dict[str, Any] = {"metric": None, "rolling": None, "estimated": None, "estimated_reference": None}
        for family in self._families.values():
            own = getattr(family, "gauge_kinds", None)
            if own is not None and kinds is not None and not _overlap(own, kinds):
                continue
            part = family.gauges()
            detectors += part["detectors"]
            quality += part.get("quality", [])
            performance = part.get("performance", performance)
        return {"detectors": detectors, "quality": quality, "performance": performance}

    def _error_values(
        self,
        y_true: Sequence[Any],
        y_pred: Sequence[Any],
        truth: np.ndarray | None = None,
        predicted: np.ndarray | None = None,
    ) -> np.ndarray:
        """0/1 errors of a classifier, absolute errors of a regressor (``truth``, ``predicted``: ``np.asarray``
        of ``y_true``, ``y_pred`` when the caller has them)."""
        if self.task == "regression":
            return np.abs(np.array(y_true, dtype=float) - np.array(y_pred, dtype=float))
        return _errors(y_true, y_pred, truth, predicted)

    def _outcome_batch(
        self,
        event_ids: Sequence[str],
        y_true: Sequence[Any],
        y_pred: Sequence[Any],
        probabilities: Sequence[dict[Any, float] | None],
        errors: np.ndarray,
        version: int,
        truth: np.ndarray | None = None,
        served: np.ndarray | None = None,
    ) -> OutcomeBatch:
        """Errors for every task; for binary classifiers with probabilities also what CBPE needs (``truth``,
        ``served``: ``np.asarray`` of ``y_true``, ``y_pred`` when the caller has them)."""
        if self.task != "binary":
            return OutcomeBatch(errors)
        scores, _ = self._outputs(y_pred, probabilities, confidences=False)
        if scores is None or self._positive_class is None:
            return OutcomeBatch(errors)
        positive = self._positive_class
        positives, predicted = _matching(y_true, positive, truth), _matching(y_pred, positive, served)
        return OutcomeBatch(errors, scores, positives, predicted, list(event_ids), version)

    # ---------------------------------------------------------------------------------------------- performance

    @property
    def calibrator(self) -> Calibrator | None:
        """The CBPE calibrator fitted on this monitor's labelled outcomes (the learning monitor's), if any."""
        family = self._families.get("performance")
        return getattr(family, "calibrator", None)

    def calibration_due(self, version: int) -> bool:
        """The events about to be watched were served by ``version`` and the calibrator of another version is in
        use (or none was looked for yet): the caller looks up ``version``'s and gives it to :meth:`use_calibration`
        before them. Only binary classifiers estimate with a calibrator.

        >>> from driftline.models.features import FeatureSchema
        >>> monitor = Monitor("m", FeatureSchema({"x": "numeric"}), "binary", None)
        >>> monitor.calibration_due(3), monitor.use_calibration(None, 3), monitor.calibration_due(3)
        (True, None, False)
        """
        return self.task == "binary" and "performance" in self._families and version != self.calibration_version

    def use_calibration(self, calibrator: Calibrator | None, version: int | None = None) -> None:
        """Estimate performance with ``calibrator`` from the next event watched on (the scoring monitor: the one
        registered with ``version``, the version that served the events that follow); None keeps the one in use."""
        if version is not None:
            self.calibration_version = version
        family = self._families.get("performance")
        if family is not None and calibrator is not None:
            self._settle()  # the pending events with the calibrator they were served under
            family.use_calibration(calibrator)  # type: ignore[attr-defined]

    def performance_windows(self) -> list[dict[str, Any]]:
        """Per window of ``performance_window`` labelled outcomes: ``{"end_event_id", "estimated": {...},
        "realised": {...}}`` (CBPE's estimate from the scores alone beside the metrics from the labels)."""
        family = self.families.get("performance")
        return list(getattr(family, "windows", []))

    # ---------------------------------------------------------------------------------------------- state

    def recommended_threshold(self) -> float | None:
        """Binary classifiers: the decision threshold on recent scores keeping the reference positive rate."""
        if self._positive_rate is None or not self._recent_scores:
            return None
        scores = np.concatenate(list(self._recent_scores))
        scores = scores[~np.isnan(scores)]
        return recommend_threshold(scores, self._positive_rate) if scores.size else None

    def gauges(self) -> dict[str, Any]:
        """Current statistics (see :func:`driftline.monitoring.gauges.monitor_gauges`)."""
        return monitor_gauges(self)

    def _remember(self, event_ids: Sequence[str], times: np.ndarray) -> None:
        batch = list(event_ids)
        self._event_ts.update(zip(batch, times.tolist(), strict=True))
        self._ts_batches.append(batch)
        while len(self._event_ts) > self.config.max_tracked_events and len(self._ts_batches) > 1:
            for event_id in self._ts_batches.popleft():
                self._event_ts.pop(event_id, None)

    def __getstate__(self) -> dict[str, Any]:
        self._settle()
        state = dict(self.__dict__)
        state["alerting"] = alerting = object.__new__(AlertBuilder)
        alerting.__dict__.update({k: v for k, v in self.alerting.__dict__.items() if k != "dedup"})
        state["_event_ts"], state["_ts_batches"] = {}, deque()
        state["families"] = state.pop("_families")  # the key checkpoints always had (older versions read it)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "history" not in state:  # checkpoint written before the history existed
            state["history"], state["outcome_history"] = _histories(state["config"])
        state.setdefault("event_time", -(2**62))  # checkpoint written before the event-time clock
        state.setdefault("_input_rows", None)  # ... or before the reference inputs
        state.setdefault("reference_inputs", None)
        state.setdefault("track_event_times", True)
        state["_families"] = state.pop("families")  # the property settles what waits
        state.setdefault("_pending", [])
        state.setdefault("_pending_events", 0)
        self.__dict__.update(state)
        self.alerting.dedup = InMemoryDeduplicator()

    def snapshot(self, key: Keyring | bytes | None = None, purpose: str = "monitor") -> bytes:
        """Checkpoint of every detector and the policy state; signed for ``purpose`` when ``key`` is given."""
        return seal(self, key, purpose)

    @classmethod
    def restore(
        cls,
        blob: bytes,
        key: Keyring | bytes | None = None,
        deduplicator: Deduplicator | None = None,
        purpose: str = "monitor",
    ) -> Monitor:
        """A monitor from :meth:`snapshot`. With ``key``, the blob must carry a valid signature for ``purpose``
        (verified before anything is unpickled); already-fired alerts stay fired (no alert storm after a
        restart)."""
        monitor = unseal(blob, key, purpose)
        if not isinstance(monitor, cls):
            raise ValueError("checkpoint does not hold a Monitor")
        if deduplicator is not None:
            monitor.alerting.dedup = deduplicator
        return monitor


def _histories(config: MonitorConfig) -> tuple[History, History]:
    """Statistics over time of what the scorer watches (per event) and of what the learner watches (per label)."""
    return (
        History(config.hop, kinds=("data_drift", "prediction_drift", "quality", "performance|estimated")),
        History(config.hop, kinds=("concept_drift", "performance|realised")),
    )


def _at(clock: np.ndarray, offset: int) -> Callable[[int], int]:
    """The event time at a finding's position (positions index the chunk starting at ``offset``)."""
    last = len(clock) - 1
    return lambda position: int(clock[min(last, offset + position)] if position >= 0 else clock[last])


def _overlap(kinds: Sequence[str], kept: Sequence[str]) -> bool:
    """Whether a series of one of ``kinds`` may start with one of the ``kept`` prefixes (a history's kinds).

    >>> _overlap(("performance",), ("concept_drift", "performance|realised")), _overlap(("quality",), ("perf",))
    (True, False)
    """
    return any(k.startswith(p) or p.startswith(k) for k in kinds for p in kept)


def _label_lag(labelled: np.ndarray, event_ts: Sequence[int] | np.ndarray) -> float | None:
    """The median of ``labelled - event_ts`` (label event time less the event's) computed on int64 arrays: the
    median of the per-outcome differences as Python ints, when both are arrays of integers (else None: the caller
    goes outcome by outcome).

    >>> _label_lag(np.array([10, 20, 40]), [5, 5, 5]), _label_lag(np.array([10, 20]), [5, None])
    (15.0, None)
    """
    times = np.asarray(event_ts)
    if times.dtype.kind != "i" or labelled.dtype.kind != "i" or times.shape != labelled.shape:
        return None
    return float(np.median(labelled.astype(np.int64) - times.astype(np.int64)))


def _positive_scores(probabilities: Sequence[dict[Any, float] | None], positive: Any) -> np.ndarray:
    """The probability of ``positive`` in each mapping, NaN where there is none (or no mapping): at once when every
    mapping holds one (a learner's joined labels), else mapping by mapping.

    >>> _positive_scores([{"True": 0.25}, {"True": 1}], "True").tolist()
    [0.25, 1.0]
    >>> _positive_scores([{"True": 0.25}, None, {}, {"False": 1.0}, {"True": None}], "True").tolist()
    [0.25, nan, nan, nan, nan]
    """
    try:
        if set(map(type, probabilities)) == {dict}:
            values = list(map(itemgetter(positive), probabilities))
            if set(map(type, values)) == {float}:
                return np.array(values, dtype=float)
    except KeyError:  # one has no probability of the positive class (or is empty): NaN there
        pass
    return np.array([p.get(positive, _NAN) if p else _NAN for p in probabilities], dtype=float)


def _errors(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    truth: np.ndarray | None = None,
    predicted: np.ndarray | None = None,
) -> np.ndarray:
    """1.0 where the label differs from the prediction (vectorised when both have one type, e.g. bools);
    ``truth``, ``predicted``: ``np.asarray`` of ``y_true``, ``y_pred`` when the caller has them."""
    truth = np.asarray(y_true) if truth is None else truth
    predicted = np.asarray(y_pred) if predicted is None else predicted
    if truth.dtype == predicted.dtype and truth.dtype.kind in "biu":
        return (truth != predicted).astype(float)
    return np.array([0.0 if _same(t, p) else 1.0 for t, p in zip(y_true, y_pred, strict=True)])


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _matching(values: Sequence[Any], positive: Any, array: np.ndarray | None = None) -> np.ndarray:
    """:func:`_same` of each value and ``positive``; at once when the values are bools (a binary learner's labels
    and predictions, whatever type its positive class has: :func:`_same` of ``True`` and of ``False`` once each).
    ``array``: ``np.asarray(values)`` when the caller has it (of bools when the values are).

    >>> _matching([True, False, 1, "true"], True).tolist(), _matching([True, False], True).tolist()
    ([True, False, True, False], [True, False])
    >>> _matching([True, False, False], 1).tolist(), _matching([True, False], "0").tolist()
    ([True, False, False], [False, True])
    """
    flags = array if array is not None and array.dtype == bool and array.shape == (len(values),) else None
    if flags is None and set(map(type, values)) == {bool}:
        flags = np.array(values, dtype=bool)
    if flags is not None:  # bools (or NumPy's, which _same takes as bools)
        return np.where(flags, _same(True, positive), _same(False, positive))
    return np.array([_same(v, positive) for v in values], dtype=bool)


def _is_positive(prediction: Any) -> bool:
    if isinstance(prediction, str):
        return prediction.lower() in ("1", "true", "yes", "positive")
    return bool(prediction)
