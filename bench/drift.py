"""`driftline bench drift`: false alarms, detection delays and monitoring overhead on synthetic streams.

Streams come from ``river.datasets.synth``; a River pipeline from :mod:`driftline.models.specs` is pre-trained on
the first ``warmup`` events of each stream (the "offline" model, ``learn_one``), whose features and scores give the
reference profile, then scores and learns the rest in batches of 500 (``predict_proba_many`` / ``learn_many``),
every batch going through :class:`driftline.monitoring.monitor.Monitor` with every detector on. Labels are joined
at once (prequential).

* **stationary**: Agrawal, SEA, Hyperplane and RandomRBF, no drift: every alert is a false alarm.
* **covariate**: the same generators, one feature (rotating with the seed) shifted by ``shift`` reference
  standard deviations from a known position: delay of the first ``data_drift`` alert on that feature; again
  with half the shift, and with a faint one (:data:`FAINT_SHIFT`); a shift not found before its stream
  ends (at most ``drift_events // 2`` events after it) is missed.
* **concept**: the label function changes at a known position (Agrawal and SEA), abruptly (the two streams
  chained; River's ``ConceptDriftStream`` overflows with ``width=1``) and gradually (``ConceptDriftStream``,
  sigmoid centred on ``position``; River documents ``width`` as the width of the change, which runs from
  ``position - width/2``, where the new concept is 12% of the stream and delays start; a detection between
  ``position - width``, at 2%, and that start is the drift detected early, delay 0; the ratios with delays
  from ``position - width`` are reported beside them). Every error-stream detector and the
  baseline ADWIN(delta=0.002) run on the same 0/1 error streams. "Equal false-alarm rate": ADWIN(0.002)'s
  false alarms are counted on stationary error streams (the monitored stationary streams, plus
  ``calibration_seeds`` x 4 longer unmonitored ones); our CUSUM gets the smallest average run length of
  :data:`ARL_GRID` at which it raises no more false alarms than ADWIN on the same outcomes (when ADWIN raised
  none, the number of outcomes: Lorden's bound then keeps its expected count below one). Both counts, and the
  CUSUM's count at every ARL tried, are reported.
* **overhead**: the same predict+learn loop with and without ``Monitor.observe_events`` on the same batches
  (interleaved repetitions, best of each): throughput ratio.

Streams are simulated at 100 events per second (timestamps drive the alert cooldown).

Examples
--------
>>> result = run(seeds=1, stationary_events=3000, drift_events=4000, warmup=2000, overhead_events=4000,
...              calibration_seeds=1, calibration_events=3000)
>>> sorted(result["figures"])  # doctest: +NORMALIZE_WHITESPACE
['abrupt_covariate_median_delay', 'abrupt_covariate_missed', 'concept_abrupt_delay_ratio_vs_adwin',
 'concept_all_delay_ratio_vs_adwin', 'concept_all_delay_ratio_vs_adwin_from_2pct',
 'concept_false_alarms_per_100k_adwin', 'concept_false_alarms_per_100k_cusum',
 'concept_gradual_delay_ratio_vs_adwin', 'faint_covariate_median_delay', 'faint_covariate_missed',
 'false_alarms_per_100k_stationary', 'monitoring_throughput_ratio']
"""

from __future__ import annotations

import copy
import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from river import drift
from river.datasets import synth

from driftline.models.features import FeatureSchema
from driftline.models.reference import ReferenceProfile, profile_values
from driftline.models.specs import build_model
from driftline.monitoring.concept import BernoulliCUSUM, ErrorStream
from driftline.monitoring.monitor import Monitor, MonitorConfig

BATCH = 500
#: The faint covariate shift every stream must still show (reference standard deviations).
FAINT_SHIFT = 0.3
#: Average run lengths tried, smallest first, when calibrating the CUSUM to ADWIN's false-alarm count.
ARL_GRID = (1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7)
MS_PER_EVENT = 10
#: Events between served versions (the worker snapshots every 1,000 labels by default).
VERSION_EVERY = 1000
ALL_DETECTORS = MonitorConfig(streaming_detectors=("adwin", "page_hinkley", "kswin"))

Row = tuple[dict[str, float], Any]
Source = Callable[[int], Iterator[tuple[dict[Any, Any], Any]]]

STATIONARY: dict[str, Source] = {
    "agrawal": lambda seed: iter(synth.Agrawal(classification_function=7, seed=seed)),
    "sea": lambda seed: iter(synth.SEA(variant=0, seed=seed)),
    "hyperplane": lambda seed: iter(synth.Hyperplane(seed=seed, n_features=10, noise_percentage=0.05)),
    "random_rbf": lambda seed: iter(synth.RandomRBF(seed_model=seed, seed_sample=seed, n_features=5)),
}

#: Concept changes: (name, generator before, generator after).
CONCEPTS: list[tuple[str, Callable[[int], Any], Callable[[int], Any]]] = [
    (
        "agrawal_7_to_8",
        lambda s: synth.Agrawal(classification_function=7, seed=s),
        lambda s: synth.Agrawal(classification_function=8, seed=s + 1000),
    ),
    (
        "agrawal_9_to_7",
        lambda s: synth.Agrawal(classification_function=9, seed=s),
        lambda s: synth.Agrawal(classification_function=7, seed=s + 1000),
    ),
    ("sea_1_to_2", lambda s: synth.SEA(variant=1, seed=s), lambda s: synth.SEA(variant=2, seed=s + 1000)),
    ("sea_0_to_3", lambda s: synth.SEA(variant=0, seed=s), lambda s: synth.SEA(variant=3, seed=s + 1000)),
]


def _rows(source: Iterator[tuple[dict[Any, Any], Any]], count: int) -> list[Row]:
    """``count`` rows with string feature names and float values (what ``FeatureSchema.prepare`` gives)."""
    rows = []
    for x, y in itertools.islice(source, count):
        rows.append(({(f"x{k}" if isinstance(k, int) else k): float(v) for k, v in x.items()}, bool(y)))
    return rows


@dataclass
class Run:
    """What one monitored stream produced."""

    events: int
    alerts: list[tuple[int, Any]]  # (event index from the start of monitoring, Alert)
    errors: np.ndarray
    monitor: Monitor


def _pretrained(rows: list[Row], warmup: int) -> tuple[FeatureSchema, Any]:
    """The "offline" model: one SGD step per example of ``rows[:warmup]`` (a batch of 500 is a single step)."""
    schema = FeatureSchema({k: "numeric" for k in rows[0][0]})
    model = build_model(schema, "binary")
    for x, y in rows[:warmup]:
        model.learn_one(x, y)
    return schema, model


def _prequential(
    model: Any, rows: list[Row], monitor: Monitor | None = None
) -> Iterator[tuple[int, list[dict[str, float]], list[Any], pd.DataFrame, pd.DataFrame]]:
    """Batches of ``rows`` scored, then learnt: (offset, features, labels, frame, probabilities). With a
    monitor, the model's state every ``VERSION_EVERY`` events is a served version, which scores the monitor's
    reference inputs for prediction drift (as the worker's snapshots do)."""
    for start in range(0, len(rows), BATCH):
        version = 1 + start // VERSION_EVERY
        if monitor is not None and monitor.prediction_reference_due(version):
            reference = model.predict_proba_many(pd.DataFrame(monitor.reference_inputs))
            monitor.set_prediction_reference(version, (reference[True] >= 0.5).tolist(), reference.to_dict("records"))
        batch = rows[start : start + BATCH]
        features = [x for x, _ in batch]
        labels = [y for _, y in batch]
        frame = pd.DataFrame(features)
        proba = model.predict_proba_many(frame)
        model.learn_many(frame, pd.Series(labels))
        yield start, features, labels, frame, proba


def _monitored(rows: list[Row], warmup: int, config: MonitorConfig, name: str) -> Run:
    """Pre-train on ``rows[:warmup]``, profile it, then score, learn and monitor the rest."""
    schema, model = _pretrained(rows, warmup)
    head = rows[:warmup]
    scores = model.predict_proba_many(pd.DataFrame([x for x, _ in head]))[True].tolist()
    reference = ReferenceProfile(
        features=ReferenceProfile.from_rows([x for x, _ in head], schema).features,
        prediction=profile_values(scores, "numeric"),
        rows=len(head),
    )
    monitor = Monitor(name, schema, "binary", reference, config)
    alerts: list[tuple[int, Any]] = []
    errors: list[np.ndarray] = []
    for start, features, labels, frame, proba in _prequential(model, rows[warmup:], monitor):
        probabilities = proba.to_dict("records")
        predictions = (proba[True] >= 0.5).tolist()
        ids = [str(start + i) for i in range(len(features))]
        ts = (warmup + start) * MS_PER_EVENT
        fired = monitor.observe_events(ids, features, predictions, probabilities, 1, ts, frame=frame)
        fired += monitor.observe_outcomes(ids, labels, predictions, probabilities, 1, ts)
        alerts += [(int(a.event_id) if a.event_id is not None else start, a) for a in fired]
        errors.append(_error_array(predictions, labels))
    return Run(len(rows) - warmup, alerts, np.concatenate(errors) if errors else np.zeros(0), monitor)


def _unmonitored_errors(rows: list[Row], warmup: int) -> np.ndarray:
    """The 0/1 error stream of the same pre-trained, learning model, without a monitor (for calibration)."""
    _, model = _pretrained(rows, warmup)
    errors = [
        _error_array((proba[True] >= 0.5).tolist(), labels)
        for _, _, labels, _, proba in _prequential(model, rows[warmup:])
    ]
    return np.concatenate(errors)


def _error_array(predictions: list[Any], labels: list[Any]) -> np.ndarray:
    """The 0/1 error stream of a batch (1 where the prediction is not the label)."""
    return np.array([p != y for p, y in zip(predictions, labels, strict=True)], dtype=float)


def _shifted(rows: list[Row], feature: str, position: int, amount: float) -> list[Row]:
    return [({**x, feature: x[feature] + amount} if i >= position else x, y) for i, (x, y) in enumerate(rows)]


def _detections(detector: Any, errors: np.ndarray) -> list[int]:
    """Indices at which a River detector (``update`` + ``drift_detected``) fires on ``errors``."""
    found = []
    for i, e in enumerate(errors.tolist()):
        detector.update(e)
        if detector.drift_detected:
            found.append(i)
    return found


def _cusum_detections(arl: float, errors: np.ndarray) -> list[int]:
    cusum, found = BernoulliCUSUM(arl=arl), []
    for start in range(0, errors.size, BATCH):
        found += [start + i for i in cusum.update_many(errors[start : start + BATCH]).detections]
    return found


def _error_stream_detections(names: tuple[str, ...], monitor: Monitor, errors: np.ndarray) -> dict[str, list[int]]:
    """Detections of the monitor's error-stream detectors (same parameters) on ``errors``."""
    stream = ErrorStream(
        "binary", names, alpha=monitor.levels.error_alpha, arl=monitor.levels.arl, grace=monitor.config.error_grace
    )
    found: dict[str, list[int]] = {name: [] for name in stream.names}
    for start in range(0, errors.size, BATCH):
        for test in stream.update_many(errors[start : start + BATCH]):
            found[test.test].append(start + test.position)
    return found


def _first_after(indices: list[int], start: int, horizon: int, earliest: int | None = None) -> int | None:
    """Delay of the first index in ``[earliest, start + horizon)`` after ``start`` (0 if before ``start``).

    >>> _first_after([90, 130], start=100, horizon=50), _first_after([90, 130], 100, 50, earliest=80)
    (30, 0)
    """
    lowest = start if earliest is None else earliest
    return next((max(0, i - start) for i in indices if lowest <= i < start + horizon), None)


def _per_100k(count: int, events: int) -> float:
    return round(count / events * 100_000, 3) if events else math.nan


def _stationary(seeds: int, events: int, warmup: int, config: MonitorConfig) -> dict[str, Any]:
    runs: list[Run] = []
    per_stream = []
    for name, source in STATIONARY.items():
        for seed in range(seeds):
            run_ = _monitored(_rows(source(seed), warmup + events), warmup, config, name)
            runs.append(run_)
            per_stream.append(
                {
                    "stream": name,
                    "seed": seed,
                    "events": run_.events,
                    "alerts": [
                        {"kind": a.kind, "feature": a.feature, "detector": a.detector, "event": i}
                        for i, a in run_.alerts
                    ],
                }
            )
    total = sum(r.events for r in runs)
    alerts = sum(len(r.alerts) for r in runs)
    by_kind: dict[str, int] = {}
    for r in runs:
        for _, alert in r.alerts:
            by_kind[alert.kind] = by_kind.get(alert.kind, 0) + 1
    return {
        "events": total,
        "alerts": alerts,
        "false_alarms_per_100k": _per_100k(alerts, total),
        "by_kind": by_kind,
        "detectors_budgeted": runs[0].monitor.detectors if runs else None,
        "streams_with_alerts": [s for s in per_stream if s["alerts"]],
        "_runs": runs,
    }


def _covariate(seeds: int, events: int, warmup: int, shift: float, config: MonitorConfig) -> dict[str, Any]:
    delays: list[int] = []
    missed: list[dict[str, Any]] = []
    early: list[dict[str, Any]] = []
    streams = []
    for name, source in STATIONARY.items():
        for seed in range(seeds):
            rows = _rows(source(seed + 100), warmup + events)
            features = sorted(rows[0][0])
            feature = features[seed % len(features)]
            position = events // 2 + (137 * (seed + 1) + 61 * len(features)) % BATCH  # not on a batch boundary
            std = float(np.std([x[feature] for x, _ in rows[:warmup]])) or 1.0
            run_ = _monitored(_shifted(rows, feature, warmup + position, shift * std), warmup, config, name)
            hits = [i for i, a in run_.alerts if a.kind == "data_drift" and a.feature == feature]
            delay = _first_after(hits, position, events - position)
            before = [(i, a.kind, a.feature, a.detector) for i, a in run_.alerts if i < position]
            if before:
                early.append({"stream": name, "seed": seed, "alerts": before})
            detectors = sorted({a.detector for i, a in run_.alerts if i >= position and a.feature == feature})
            streams.append(
                {
                    "stream": name,
                    "seed": seed,
                    "feature": feature,
                    "position": position,
                    "delay": delay,
                    "detectors": detectors,
                }
            )
            if delay is None:
                missed.append({"stream": name, "seed": seed, "feature": feature})
            else:
                delays.append(delay)
    return {
        "shift_std": shift,
        "streams": len(streams),
        "median_delay": statistics.median(delays) if delays else None,
        "mean_delay": round(statistics.fmean(delays), 1) if delays else None,
        "max_delay": max(delays) if delays else None,
        "missed": len(missed),
        "missed_streams": missed,
        "alerts_before_drift": early,
        "per_stream": streams,
    }


def _concept_errors(seeds: int, events: int, warmup: int, widths: tuple[int, ...]) -> list[dict[str, Any]]:
    """0/1 error streams of pre-trained models across known concept changes."""
    out = []
    position = events // 2
    for name, before, after in CONCEPTS:
        for seed in range(seeds):
            for width in widths:
                if width <= 1:
                    source: Iterator[Any] = itertools.chain(
                        itertools.islice(iter(before(seed)), warmup + position), iter(after(seed))
                    )
                else:
                    source = iter(
                        synth.ConceptDriftStream(
                            before(seed), after(seed), position=warmup + position, width=width, seed=seed
                        )
                    )
                rows = _rows(source, warmup + events)
                run_ = _monitored(rows, warmup, ALL_DETECTORS, name)
                alerts = [i for i, a in run_.alerts if a.kind == "concept_drift"]
                out.append(
                    {
                        "stream": name,
                        "seed": seed,
                        "width": width,
                        "errors": run_.errors,
                        "starts": {"change": position - width // 2, "2pct": position - (width if width > 1 else 0)},
                        "monitor": run_.monitor,
                        "alerts": alerts,
                    }
                )
    return out


def _calibration_errors(seeds: int, events: int, warmup: int) -> list[np.ndarray]:
    """Longer stationary error streams (``seeds`` per generator, seeds after the monitored ones)."""
    return [
        _unmonitored_errors(_rows(source(1000 + seed), warmup + events), warmup)
        for source in STATIONARY.values()
        for seed in range(seeds)
    ]


def _equal_false_alarm_arl(stationary: list[np.ndarray], adwin_false_alarms: int) -> tuple[float, dict[float, int]]:
    """The CUSUM's ARL at ADWIN's false-alarm count, and the CUSUM's count at every ARL tried."""
    outcomes = float(sum(e.size for e in stationary))
    candidates = [arl for arl in ARL_GRID if arl < outcomes] + [outcomes] if adwin_false_alarms else [outcomes]
    tried: dict[float, int] = {}
    for arl in candidates:
        tried[arl] = sum(len(_cusum_detections(arl, errors)) for errors in stationary)
        if tried[arl] <= adwin_false_alarms:
            return arl, tried
    return candidates[-1], tried


def _concept(
    stationary_runs: list[Run], calibration: list[np.ndarray], concept_runs: list[dict[str, Any]], horizon: int
) -> dict[str, Any]:
    names = ALL_DETECTORS.error_detectors
    monitor = stationary_runs[0].monitor
    stationary = [r.errors for r in stationary_runs] + calibration
    stationary_outcomes = sum(e.size for e in stationary)
    fa: dict[str, int] = {"adwin_0.002": 0}
    for errors in stationary:
        fa["adwin_0.002"] += len(_detections(drift.ADWIN(delta=0.002), errors))
        for name, found in _error_stream_detections(names, monitor, errors).items():
            fa[name] = fa.get(name, 0) + len(found)
    calibrated_arl, tried = _equal_false_alarm_arl(stationary, fa["adwin_0.002"])
    fa["cusum_equal_fa"] = tried[calibrated_arl]
    detections = []
    per_stream = []
    for c in concept_runs:
        errors, start, earliest = c["errors"], c["starts"]["change"], c["starts"]["2pct"]
        found = {
            "adwin_0.002": _detections(drift.ADWIN(delta=0.002), errors),
            "cusum_equal_fa": _cusum_detections(calibrated_arl, errors),
            **_error_stream_detections(names, c["monitor"], errors),
        }
        detections.append(found)
        row = {
            "stream": c["stream"],
            "seed": c["seed"],
            "width": c["width"],
            "start": start,
            "error_rate_before": round(float(errors[:start].mean()), 4),
            "error_rate_after": round(float(errors[start + c["width"] :][:2000].mean()), 4),
            **{name: _first_after(indices, start, horizon, earliest) for name, indices in found.items()},
            "monitor_alert_delay": _first_after(c["alerts"], start, horizon, earliest),
        }
        per_stream.append(row)

    def delays(name: str, origin: str = "change") -> list[int | None]:
        return [
            _first_after(found[name], c["starts"][origin], horizon, c["starts"]["2pct"])
            for found, c in zip(detections, concept_runs, strict=True)
        ]

    def ratio(ours: str, abrupt: bool | None = None, origin: str = "change") -> float | None:
        """Mean delay of ``ours`` over ADWIN(0.002)'s, on the streams both detected (of one kind, or all)."""
        pairs = [
            (o, a)
            for o, a, c in zip(delays(ours, origin), delays("adwin_0.002", origin), concept_runs, strict=True)
            if o is not None and a is not None and (abrupt is None or (c["width"] <= 1) == abrupt)
        ]
        if not pairs:
            return None
        return round(statistics.fmean(o for o, _ in pairs) / statistics.fmean(a for _, a in pairs), 3)

    def summary(name: str) -> dict[str, Any]:
        values = delays(name)
        hit = [v for v in values if v is not None]
        return {
            "mean_delay": round(statistics.fmean(hit), 1) if hit else None,
            "missed": len(values) - len(hit),
            "false_alarms": fa.get(name, 0),
            "false_alarms_per_100k": _per_100k(fa.get(name, 0), stationary_outcomes),
        }

    return {
        "stationary_outcomes": stationary_outcomes,
        "cusum_calibrated_arl": round(calibrated_arl),
        "cusum_false_alarms_by_arl": {str(round(arl)): count for arl, count in tried.items()},
        "detectors": {name: summary(name) for name in detections[0]} if detections else {},
        "delay_ratio_vs_adwin_abrupt": ratio("cusum_equal_fa", abrupt=True),
        "delay_ratio_vs_adwin_gradual": ratio("cusum_equal_fa", abrupt=False),
        "delay_ratio_vs_adwin_all": ratio("cusum_equal_fa"),
        "delay_ratio_vs_adwin_gradual_from_2pct": ratio("cusum_equal_fa", abrupt=False, origin="2pct"),
        "delay_ratio_vs_adwin_all_from_2pct": ratio("cusum_equal_fa", origin="2pct"),
        "delay_ratio_vs_adwin_monitor_budget_cusum_abrupt": ratio("cusum", abrupt=True),
        "delay_ratio_vs_adwin_monitor_budget_cusum_all": ratio("cusum"),
        "per_stream": per_stream,
    }


def _overhead(events: int, warmup: int, repeats: int = 5) -> dict[str, Any]:
    rows = _rows(STATIONARY["agrawal"](7), warmup + events)
    schema = FeatureSchema({k: "numeric" for k in rows[0][0]})
    base = build_model(schema, "binary")
    for x, y in rows[:warmup]:
        base.learn_one(x, y)
    reference = ReferenceProfile.from_rows([x for x, _ in rows[:warmup]], schema)
    batches = [
        ([x for x, _ in rows[i : i + BATCH]], [y for _, y in rows[i : i + BATCH]])
        for i in range(warmup, len(rows), BATCH)
    ]

    def loop(monitor: Monitor | None, outcomes: bool = False) -> float:
        model = copy.deepcopy(base)
        began = time.perf_counter()
        for b, (features, labels) in enumerate(batches):
            frame = pd.DataFrame(features)
            proba = model.predict_proba_many(frame)
            model.learn_many(frame, pd.Series(labels))
            # What the scorer publishes per event (prediction + probabilities), with or without monitoring.
            probabilities = proba.to_dict("records")
            predictions = (proba[True] >= 0.5).tolist()
            ids = [f"{b}-{i}" for i in range(len(features))]
            if monitor is not None:
                monitor.observe_events(
                    ids, features, predictions, probabilities, 1, b * BATCH * MS_PER_EVENT, frame=frame
                )
                if outcomes:
                    monitor.observe_outcomes(ids, labels, predictions, probabilities, 1, b * BATCH * MS_PER_EVENT)
        return events / (time.perf_counter() - began)

    plain, monitored, with_outcomes = [], [], []
    for _ in range(repeats):
        plain.append(loop(None))
        monitored.append(loop(Monitor("bench", schema, "binary", reference, ALL_DETECTORS)))
        with_outcomes.append(loop(Monitor("bench", schema, "binary", reference, ALL_DETECTORS), outcomes=True))
    return {
        "events": events,
        "features": len(schema.kinds),
        "batch": BATCH,
        "events_per_s_without": round(max(plain)),
        "events_per_s_with_observe_events": round(max(monitored)),
        "events_per_s_with_observe_events_and_outcomes": round(max(with_outcomes)),
        "ratio": round(max(monitored) / max(plain), 3),
        "ratio_with_outcomes": round(max(with_outcomes) / max(plain), 3),
    }


def run(
    seeds: int = 5,
    stationary_events: int = 15_000,
    drift_events: int = 10_000,
    warmup: int = 5_000,
    shift: float = 1.0,
    overhead_events: int = 50_000,
    calibration_seeds: int = 25,
    calibration_events: int = 30_000,
) -> dict[str, Any]:
    """Run every section; the figures and the details behind them (JSON-serialisable)."""
    began = time.perf_counter()
    stationary = _stationary(seeds, stationary_events, warmup, ALL_DETECTORS)
    stationary_runs = stationary.pop("_runs")
    covariate = _covariate(seeds, drift_events, warmup, shift, ALL_DETECTORS)
    covariate_small = _covariate(seeds, drift_events, warmup, shift / 2, ALL_DETECTORS)
    covariate_faint = _covariate(seeds, drift_events, warmup, FAINT_SHIFT, ALL_DETECTORS)
    concept_runs = _concept_errors(seeds, drift_events, warmup, widths=(1, 1000))
    calibration = _calibration_errors(calibration_seeds, calibration_events, warmup)
    concept = _concept(stationary_runs, calibration, concept_runs, horizon=drift_events // 2)
    overhead = _overhead(overhead_events, warmup)
    return {
        "figures": {
            "false_alarms_per_100k_stationary": stationary["false_alarms_per_100k"],
            "abrupt_covariate_median_delay": covariate["median_delay"],
            "abrupt_covariate_missed": covariate["missed"],
            "faint_covariate_median_delay": covariate_faint["median_delay"],
            "faint_covariate_missed": covariate_faint["missed"],
            "concept_all_delay_ratio_vs_adwin": concept["delay_ratio_vs_adwin_all"],
            "concept_abrupt_delay_ratio_vs_adwin": concept["delay_ratio_vs_adwin_abrupt"],
            "concept_gradual_delay_ratio_vs_adwin": concept["delay_ratio_vs_adwin_gradual"],
            "concept_all_delay_ratio_vs_adwin_from_2pct": concept["delay_ratio_vs_adwin_all_from_2pct"],
            "concept_false_alarms_per_100k_cusum": concept["detectors"]["cusum_equal_fa"]["false_alarms_per_100k"],
            "concept_false_alarms_per_100k_adwin": concept["detectors"]["adwin_0.002"]["false_alarms_per_100k"],
            "monitoring_throughput_ratio": overhead["ratio"],
        },
        "targets": {
            "false_alarms_per_100k_stationary": "<= 1",
            "abrupt_covariate_median_delay": "<= 500 events",
            "abrupt_covariate_missed": "0",
            "faint_covariate_missed": f"0 (a {FAINT_SHIFT} std shift, found before the stream ends, at most "
            f"{drift_events // 2:,} events after it)",
            "concept_all_delay_ratio_vs_adwin": "<= 0.5 (every concept stream, abrupt and gradual, at an equal "
            "false-alarm rate: the two rates below)",
            "concept_abrupt_delay_ratio_vs_adwin": "reported (abrupt streams only)",
            "concept_gradual_delay_ratio_vs_adwin": "reported (gradual streams only)",
            "concept_all_delay_ratio_vs_adwin_from_2pct": "reported (gradual delays from position - width)",
            "monitoring_throughput_ratio": ">= 0.7",
        },
        "config": {
            "seeds": seeds,
            "stationary_events_per_stream": stationary_events,
            "warmup": warmup,
            "drift_events_per_stream": drift_events,
            "shift_std": shift,
            "batch": BATCH,
            "calibration_seeds": calibration_seeds,
            "calibration_events_per_stream": calibration_events,
            "monitor": {
                "window": ALL_DETECTORS.window,
                "hop": ALL_DETECTORS.hop,
                "false_alarms_per_100k": ALL_DETECTORS.false_alarms_per_100k,
                "streaming_detectors": list(ALL_DETECTORS.streaming_detectors),
                "error_detectors": list(ALL_DETECTORS.error_detectors),
            },
        },
        "stationary": stationary,
        "covariate": covariate,
        "covariate_half_shift": covariate_small,
        "covariate_faint_shift": covariate_faint,
        "concept": concept,
        "overhead": overhead,
        "seconds": round(time.perf_counter() - began, 1),
    }
