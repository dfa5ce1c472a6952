"""Grouping the scored chunks on which no detector tests (observed at the next chunk that can) raises exactly the
alerts of observing every chunk as it comes and leaves exactly the same monitor, over random streams: batch sizes
from one event to a few hops, drifting and missing features, unseen categories, dicts or columns, the three
tasks, the three prediction references, streaming detectors, dead-lettered events, joined outcomes,
calibrators, new versions' prediction references, checkpoints and gauges read in between."""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.models.feature_columns import prepare_columns
from driftline.models.features import FeatureSchema
from driftline.models.probability_rows import ProbabilityRows
from driftline.models.reference import ReferenceProfile
from driftline.monitoring.cbpe import Calibrator
from driftline.monitoring.drift_numeric import NumericDriftBank
from driftline.monitoring.monitor import Monitor, MonitorConfig
from driftline.monitoring.window import WindowTest

SCHEMA = FeatureSchema({"x": "numeric", "y": "numeric", "c": "categorical"})

events = st.tuples(
    st.just("events"),
    # events in the call (the hop is 20): mostly a few, as at 1,000 events/s
    st.tuples(st.integers(0, 3), st.integers(1, 5), st.integers(1, 70)).map(lambda t: t[2] if t[0] == 0 else t[1]),
    st.sampled_from([0.0, 0.0, 1.5, 4.0]),  # shift of x
    st.sampled_from([0.0, 0.0, 0.4]),  # missing rate of x and c
    st.booleans(),  # unseen categories
    st.booleans(),  # columns (as the ordered monitor gives them) or dicts
    st.sampled_from([0.0, 0.0, 0.3]),  # events without probabilities (as dicts)
    st.integers(0, 15),  # a new version when 0
)
other = st.tuples(st.integers(0, 5), st.integers(1, 40)).map(
    lambda t: [
        ("invalid", 1 + t[1] % 3),
        ("outcomes", t[1]),
        ("calibrate", t[1] % 2),
        ("calibrate", t[1] % 2),
        ("checkpoint", 0),
        ("gauges", 0),
    ][t[0]]
)
# mostly scored events; each of the others observes what is pending first
step = st.tuples(st.integers(0, 7), events, other).map(lambda t: t[2] if t[0] == 0 else t[1])


def config(task: str, mode: str, streaming: bool) -> MonitorConfig:
    return MonitorConfig(
        window=40,
        hop=20,
        reference_events=40,
        reference_inputs=30,
        prediction_reference=mode,  # type: ignore[arg-type]
        prediction_lag=40,
        false_alarms_per_100k=5000.0,
        min_samples=10,
        cooldown_events=0,
        cooldown_seconds=0,
        streaming_detectors=("adwin", "page_hinkley") if streaming else (),
        streaming_block=10,
        kswin_block=20,
        error_grace=20,
        performance_window=60,
        calibration_every=30,
    )


def rows(rng: np.random.Generator, n: int, shift: float, missing: float, unseen: bool) -> list[dict[str, Any]]:
    out = []
    cats = list("abcz") if unseen else list("abc")
    for x, y, c, gone in zip(
        rng.normal(shift, 1, n), rng.integers(0, 5, n), rng.choice(cats, n), rng.random(n) < missing, strict=True
    ):
        row: dict[str, Any] = {"y": float(y)}
        if not gone:
            row["x"], row["c"] = float(x), str(c)
        out.append(row)
    return out


def outputs(task: str, features: list[dict[str, Any]], dense: bool) -> tuple[list[Any], Any]:
    x = np.array([f.get("x", 0.0) for f in features])
    if task == "regression":
        return (2 * x).tolist(), [None] * len(x)
    if task == "binary":
        s = 1 / (1 + np.exp(-x))
        if dense:
            return (s >= 0.5).tolist(), ProbabilityRows([False, True], np.column_stack([1 - s, s]))
        return (s >= 0.5).tolist(), [{False: float(1 - p), True: float(p)} for p in s]
    p = np.column_stack([np.full(len(x), 0.2), 1 / (1 + np.exp(-x)), np.full(len(x), 0.3)])
    p /= p.sum(axis=1, keepdims=True)
    classes = ["a", "b", "c"]
    predictions = [classes[i] for i in p.argmax(axis=1)]
    if dense:
        return predictions, ProbabilityRows(classes, p)
    return predictions, [dict(zip(classes, r.tolist(), strict=True)) for r in p]


def state(monitor: Monitor) -> bytes:
    """Everything a checkpoint keeps (the pending chunks observed first), but the switch under test and the
    positions the latest tests carry: those index the values of the update that ran them (a grouped batch or
    one chunk), never read after it; the alerts above compare the events they point at."""
    kept = {k: v for k, v in monitor.__getstate__().items() if k != "group_events"}
    return pickle.dumps(_positionless(pickle.loads(pickle.dumps(kept))))


def _positionless(obj: Any, seen: set[int] | None = None) -> Any:
    """``obj`` with every :class:`WindowTest`'s position and every drift bank's evaluation row set to 0."""
    seen = set() if seen is None else seen
    if isinstance(obj, WindowTest):
        return replace(obj, position=0)
    if isinstance(obj, list):
        return [_positionless(v, seen) for v in obj]
    if isinstance(obj, dict):
        return {k: _positionless(v, seen) for k, v in obj.items()}
    if (
        hasattr(obj, "__dict__")
        and not isinstance(obj, type)
        and id(obj) not in seen
        and "driftline" in type(obj).__module__
    ):
        seen.add(id(obj))
        for name, value in vars(obj).items():
            if isinstance(obj, NumericDriftBank) and name == "evaluations":
                value = [(0, statistics) for _, statistics in value]
            object.__setattr__(obj, name, _positionless(value, seen))
    return obj


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["binary", "binary", "regression", "multiclass"]),
    st.sampled_from(["model", "model", "trailing", "profile"]),
    st.sampled_from([False, False, False, True]),
    st.booleans(),
    st.lists(step, min_size=10, max_size=40),
    st.integers(0, 2**31),
)
def test_grouped_chunks_raise_the_same_alerts_and_leave_the_same_state(
    task: str, mode: str, streaming: bool, profiled: bool, steps: list, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    cfg = config(task, mode, streaming)
    reference = ReferenceProfile.from_rows(rows(rng, 200, 0.0, 0.1, False), SCHEMA) if profiled else None
    grouped, one_by_one = Monitor("m", SCHEMA, task, reference, cfg), Monitor("m", SCHEMA, task, reference, cfg)
    one_by_one.group_events = False
    monitors = (grouped, one_by_one)
    seen: list[tuple[str, dict[str, Any]]] = []
    clock, version = 0, 1
    for k, (kind, *args) in enumerate(steps):
        alerts: list[list[dict[str, Any]]] = [[], []]
        if kind == "events":
            n, shift, missing, unseen, as_columns, unscored, bump = args
            version += bump == 0
            features = rows(rng, n, shift, missing, unseen)
            predictions, probabilities = outputs(task, features, dense=as_columns)
            if not as_columns and task != "regression":
                probabilities = [None if u < unscored else p for u, p in zip(rng.random(n), probabilities, strict=True)]
            ids = [f"e{len(seen) + i}" for i in range(n)]
            ts = (clock + np.cumsum(rng.integers(-3, 10, n))).tolist()
            clock = max(ts)
            seen += list(zip(ids, features, strict=True))
            for i, monitor in enumerate(monitors):
                if monitor.prediction_reference_due(version):
                    inputs = monitor.reference_inputs or []
                    monitor.set_prediction_reference(version, *outputs(task, [dict(r) for r in inputs], dense=False))
                if as_columns:
                    columns, errors = prepare_columns(SCHEMA, features)
                    assert not errors
                    fired = monitor.observe_events(ids, None, predictions, probabilities, version, ts, columns=columns)
                else:
                    fired = monitor.observe_events(ids, features, predictions, probabilities, version, ts)
                alerts[i] = [a.model_dump() for a in fired]
        elif kind == "invalid":
            for i, monitor in enumerate(monitors):
                alerts[i] = [a.model_dump() for a in monitor.observe_invalid(args[0], ["schema"] * args[0])]
        elif kind == "outcomes" and seen:
            picked = [seen[j] for j in rng.integers(0, len(seen), args[0])]
            predictions, probabilities = outputs(task, [f for _, f in picked], dense=False)
            truth = outputs(task, rows(rng, len(picked), 0.0, 0.0, False), dense=False)[0]
            for i, monitor in enumerate(monitors):
                fired = monitor.observe_outcomes(
                    [e for e, _ in picked], truth, predictions, probabilities, 1 + k % 3, clock
                )
                alerts[i] = [a.model_dump() for a in fired]
        elif kind == "calibrate" and task == "binary":
            scores = rng.random(50)
            calibrator = Calibrator.fit(scores, rng.random(50) < scores, method=("platt", "isotonic")[args[0]])
            for monitor in monitors:
                monitor.use_calibration(calibrator)
        elif kind == "checkpoint":
            grouped, one_by_one = (Monitor.restore(m.snapshot()) for m in monitors)
            monitors = (grouped, one_by_one)
        elif kind == "gauges":
            assert grouped.gauges() == one_by_one.gauges()
        assert alerts[0] == alerts[1], (k, kind)
    assert state(grouped) == state(one_by_one)
    assert one_by_one.group_events is False and not one_by_one._pending


def test_chunks_are_grouped_between_tests() -> None:
    """At a few events a call, the families are observed once per hop, not once per call (what the test above
    proves equal)."""
    rng = np.random.default_rng(1)
    reference = ReferenceProfile.from_rows(rows(rng, 200, 0.0, 0.0, False), SCHEMA)
    monitor = Monitor("m", SCHEMA, "binary", reference, config("binary", "profile", False))
    calls = 0
    observe = monitor._observe

    def counted(observation: Any) -> list:
        nonlocal calls
        calls += 1
        return observe(observation)

    monitor._observe = counted  # type: ignore[method-assign]
    for b in range(60):  # 60 calls of 5 events: 300 events, 15 hops of 20
        features = rows(rng, 5, 0.0, 0.0, False)
        predictions, probabilities = outputs("binary", features, dense=False)
        monitor.observe_events([f"e{b}-{i}" for i in range(5)], features, predictions, probabilities, 1, b)
    assert calls == 15
    assert not monitor._pending and monitor.events == 300
