"""``driftline bench drift --live``: the drift scenarios through the real stack, beside the same events in process.

Scenarios (the demo's synthetic Agrawal stream, labels ``label_delay`` events late): ``drift`` (salary shifted
and the concept changed at mid-stream) and ``stationary`` (no change). Each runs

* **in process**: the events in order through a :class:`driftline.monitoring.monitor.Monitor` with the same
  bootstrap model, learning from the delayed labels as the worker's learner does (an
  :class:`~driftline.models.learner.OnlineLearner`, concept drift on the errors of its copy frozen every 1,000
  labels: :mod:`driftline.streams.staged_learning`) and served as a new version every 1,000 labels (as the
  worker's snapshots), every default detector on;
* **live**: the embedded broker (4 partitions) and redis-server, ``driftline worker`` processes (1 and 2), as a
  *backlog* (everything published before the workers start) and *paced* (published at ``rate`` events/s while
  they run); the workers start together (one consumer group, one first assignment); the alerts are read back
  from the ``alerts`` topic, and each worker's ``driftline_events_scored_total`` (``scored_per_worker``) shows
  that each did its share; ``out_of_order`` is what the model's one ordered monitor watched after a later event
  (``driftline_monitor_feed_events``, docs/ARCHITECTURE.md).

Figures: covariate delay (the first ``data_drift`` alert on salary after the change, in events), concept delay
(the first ``concept_drift`` alert; and per detector: CUSUM, River's ADWIN, DDM and EDDM on the same errors, each
held to its share of the false-alarm budget), false alarms (alerts before the change; every alert on the stationary
stream, per 100k events), and the live ÷ in-process delay ratio. The label-free estimate: per 1,000 labelled
outcomes of the in-process drift run, CBPE's estimated ROC AUC and accuracy against the realised ones, beside
NannyML's CBPE on the same scores when NannyML is installed (the ``[bench]`` extra).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import os
import secrets
import statistics
import time
import urllib.request
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract.records import Label
from driftline.contract.settings import Settings
from driftline.embedded.demo import (
    Tally,
    collect,
    interleave,
    register_demo_model,
    start_worker,
    worker_env,
)
from driftline.embedded.stack import embedded_stack, free_port, stop_process, wait_for_port
from driftline.models.bootstrap import synthetic_stream
from driftline.models.learner import OnlineLearner
from driftline.models.registry import ModelRegistry
from driftline.monitoring.cbpe import realised
from driftline.monitoring.monitor import Monitor, MonitorConfig
from driftline.streams.connections import async_redis_client, kafka_kwargs, redis_client
from driftline.streams.learner_state import learned_count
from driftline.streams.learning_stage import JoinRecord
from driftline.streams.producer import message_key
from driftline.streams.publisher import producer_for
from driftline.streams.staged_learning import FrozenModel, learn_staged
from driftline.streams.topics import ensure_topics

VERSION_EVERY = 1000
WINDOW = 1000


def messages(n: int, drift: bool) -> tuple[list[bytes], list[bytes], int]:
    """Raw events and labels of a scenario, and the index of the change (``n`` when there is none)."""
    drift_at = n // 2 if drift else n
    pairs = list(synthetic_stream(n, drift_at=drift_at))
    events = [json.dumps(e).encode() for e, _ in pairs]
    labels = [json.dumps({"event_id": e["event_id"], "label": y, "ts": e["ts"]}).encode() for e, y in pairs]
    return events, labels, drift_at


def figures(alerts: list[dict[str, Any]], drift_at: int, n: int) -> dict[str, Any]:
    """Delays and false alarms from alerts (their ``event_id`` is ``ev-<index>``)."""

    def index(alert: dict[str, Any]) -> int | None:
        event_id = alert.get("event_id")
        return int(event_id.rsplit("-", 1)[1]) if event_id else None

    positions = [(index(a), a) for a in alerts]
    before = [a for i, a in positions if i is None or i < drift_at]
    covariate = [
        i
        for i, a in positions
        if i is not None and i >= drift_at and (a["kind"], a.get("feature")) == ("data_drift", "salary")
    ]
    concept = [i for i, a in positions if i is not None and i >= drift_at and a["kind"] == "concept_drift"]
    by_detector: dict[str, int] = {}
    for i, a in positions:
        if i is not None and i >= drift_at and a["kind"] == "concept_drift" and drift_at < n:
            by_detector[a["detector"]] = min(by_detector.get(a["detector"], n), i - drift_at)
    return {
        "alerts": len(alerts),
        "false_alarms": len(before),
        "false_alarms_per_100k": round(len(before) / max(drift_at, 1) * 100_000, 2),
        "false_alarm_kinds": sorted({f"{a['kind']}:{a.get('feature') or '-'}:{a['detector']}" for a in before}),
        "covariate_delay": min(covariate) - drift_at if covariate and drift_at < n else None,
        "concept_delay": min(concept) - drift_at if concept and drift_at < n else None,
        # each error-stream detector on the same errors, each held to its share of the false-alarm budget
        "concept_delay_by_detector": dict(sorted(by_detector.items())),
    }


def in_process(registry: ModelRegistry, name: str, events: list[bytes], labels: list[bytes], delay: int) -> dict:
    """The events in order through a monitor, the served model a snapshot of the learner every 1,000 labels."""
    meta, model = registry.load(name)
    schema = meta.feature_schema()
    monitor = Monitor(name, schema, meta.task, registry.reference(name), MonitorConfig())
    served, version, since = copy.deepcopy(model), meta.version, 0
    learner = OnlineLearner(model, meta.task)
    frozen = FrozenModel(model, 0, VERSION_EVERY)
    parsed = [json.loads(e) for e in events]
    truth = [json.loads(label)["label"] for label in labels]
    alerts, outcomes, scores, positives = [], [], [], []
    batch = 500
    for start in range(0, len(parsed), batch):
        chunk = parsed[start : start + batch]
        rows = [schema.prepare(e["features"]) for e in chunk]
        if monitor.prediction_reference_due(version):
            proba = served.predict_proba_many(pd.DataFrame(monitor.reference_inputs))
            monitor.set_prediction_reference(version, (proba[True] >= 0.5).tolist(), proba.to_dict("records"))
        proba = served.predict_proba_many(pd.DataFrame(rows))
        probabilities = proba.to_dict("records")
        predictions = (proba[True] >= 0.5).tolist()
        ids = [e["event_id"] for e in chunk]
        alerts += monitor.observe_events(ids, rows, predictions, probabilities, version, [e["ts"] for e in chunk])
        outcomes.append((start, rows, ids, predictions, probabilities, [e["ts"] for e in chunk]))
        while outcomes and outcomes[0][0] + batch + delay <= start + batch:
            first, rows_, ids_, preds_, probs_, ts_ = outcomes.pop(0)
            y = truth[first : first + len(ids_)]
            joined = [
                (Label(event_id=i, label=t, ts=at), JoinRecord(x, p, q, None, version, 2**62))
                for i, t, at, x, p, q in zip(ids_, y, ts_, rows_, preds_, probs_, strict=True)
            ]
            outcome, staged = learn_staged(learner, joined, frozen)
            assert outcome.learned == len(ids_), outcome.messages
            concept = [staged.get(i, preds_[i]) for i in range(len(ids_))]
            alerts += monitor.observe_outcomes(
                ids_, y, preds_, probs_, version, [t + delay for t in ts_], concept_predictions=concept
            )
            scores += [p[True] for p in probs_]
            positives += [bool(v) for v in y]
            since += len(ids_)
            if since >= VERSION_EVERY:
                served, version, since = copy.deepcopy(model), version + 1, 0
    return {
        "alerts": [a.model_dump() for a in alerts],
        "monitor": monitor,
        "scores": np.array(scores),
        "labels": np.array(positives),
    }


def estimate_error(monitor: Monitor, first_end: int) -> dict[str, Any]:
    """Mean absolute error per window of CBPE's estimated ROC AUC and accuracy (the learning side's windows
    ending at event ``first_end`` or later)."""
    windows = [w for w in monitor.performance_windows() if int(str(w["end_event_id"]).rsplit("-", 1)[1]) >= first_end]
    out: dict[str, Any] = {"windows": len(windows)}
    for metric in ("roc_auc", "accuracy"):
        errors = [
            abs(w["estimated"][metric] - w["realised"][metric])
            for w in windows
            if w["estimated"][metric] is not None and w["realised"][metric] is not None
        ]
        out[metric] = round(float(np.mean(errors)), 4) if errors else None
    return out


def nannyml_error(scores: np.ndarray, labels: np.ndarray, reference: int) -> dict[str, Any] | None:
    """NannyML CBPE fitted on the first ``reference`` outcomes, estimating the rest per window of 1,000."""
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no telemetry call to segment.io
    try:
        import nannyml as nml  # noqa: PLC0415 - bench-only extra
    except ImportError:
        return None
    frame = pd.DataFrame({"p": scores, "pred": (scores >= 0.5).astype(int), "y": labels.astype(int)})
    estimator = nml.CBPE(
        y_pred_proba="p",
        y_pred="pred",
        y_true="y",
        metrics=["roc_auc", "accuracy"],
        chunk_size=WINDOW,
        problem_type="classification_binary",
    )
    estimator.fit(frame.iloc[:reference])
    analysis = frame.iloc[reference:].reset_index(drop=True)
    result = estimator.estimate(analysis.drop(columns=["y"])).filter(period="analysis").to_df()
    out: dict[str, Any] = {"version": nml.__version__}
    for metric in ("roc_auc", "accuracy"):
        estimated = result[(metric, "value")].to_numpy()
        errors = []
        for k, value in enumerate(estimated):
            part = analysis.iloc[k * WINDOW : (k + 1) * WINDOW]
            if len(part) == WINDOW:
                real = realised(part["p"].to_numpy(), part["y"].to_numpy(bool), predicted=part["pred"].to_numpy(bool))
                errors.append(abs(value - real[metric]))
        out[metric] = round(float(np.mean(errors)), 4) if errors else None
    return out


async def live(
    events: list[bytes], labels: list[bytes], workers: int, paced: float | None, delay: int
) -> tuple[list[dict[str, Any]], list[int], int]:
    """One run on the real stack: the alerts the workers published, the events each worker scored, and the events
    the ordered monitor watched out of order."""
    settings = Settings()
    with embedded_stack() as stack:
        hmac_key = secrets.token_hex(16)
        worker_settings = Settings(broker_url=stack.broker_url, redis_url=stack.redis_url, model_hmac_key=hmac_key)
        registry = ModelRegistry(redis_client(worker_settings, stack.redis_url), hmac_key.encode())
        register_demo_model(registry, settings.model_name, events, labels, True, None)
        await ensure_topics(settings, stack.broker_url)
        producer = producer_for(kafka_kwargs(settings, stack.broker_url))
        await producer.start()
        procs = []

        async def publish(rate: float | None) -> None:
            pending, started = [], time.monotonic()
            for i, (kind, raw) in enumerate(interleave(events, labels, delay)):
                key = message_key(raw) if kind == "events" else settings.model_name.encode()
                pending.append(await producer.send(settings.topic(kind), raw, key=key))
                if i % 500 == 499:
                    await asyncio.gather(*pending)
                    pending.clear()
                    if rate:
                        ahead = (i + 1) / 2 / rate - (time.monotonic() - started)  # two messages per event
                        if ahead > 0:
                            await asyncio.sleep(ahead)
            await asyncio.gather(*pending)

        ports: list[int] = []

        def start_all() -> None:
            """Every worker started at once (one group, one first assignment), then each waited for."""
            for k in range(workers):
                ports.append(free_port())
                env = worker_env(settings, stack, hmac_key, ports[-1])
                env["DRIFTLINE_STATE_DIR"] = str(stack.workdir / f"state-{k}")
                procs.append(start_worker(env, stack.workdir / f"worker-{k}.log"))
            for port, proc in zip(ports, procs, strict=True):
                wait_for_port(port, timeout=60, proc=proc)

        tally, stop = Tally(), asyncio.Event()
        try:
            if paced is None:
                await publish(None)
                await asyncio.to_thread(start_all)
            else:
                await asyncio.to_thread(start_all)
                await publish(paced)
            collector = asyncio.create_task(collect(settings, stack.broker_url, tally, stop))
            redis = async_redis_client(settings, stack.redis_url)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                learned = await learned_count(redis, settings.redis_prefix, settings.model_name)
                scored = len(tally.scored) + tally.dead_lettered["events"]
                if scored >= len(events) and learned + tally.dead_lettered["labels"] >= len(labels):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)  # checkpoints and the last batches' alerts
            stop.set()
            await collector
            await redis.aclose()
            shares = [await asyncio.to_thread(scored_by, port) for port in ports]
            late = [await asyncio.to_thread(scored_by, port, OUT_OF_ORDER) for port in ports]
        finally:
            await producer.stop()
            for proc in procs:
                stop_process(proc)
        return tally.alerts, shares, sum(late)


def scored_by(port: int, series: str | None = None) -> int:
    """Events a worker scored, from its ``/metrics`` (or the sum of another ``series``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    series = series or SCORED
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series)))


SCORED = "driftline_events_scored_total{"
#: Events the model's ordered monitor watched after a later event (the worker that owns its feed reports them).
OUT_OF_ORDER = 'driftline_monitor_feed_events{model="default",state="out_of_order"}'


def run(n_events: int = 20_000, rate: float = 2000.0, label_delay: int = 500) -> dict[str, Any]:
    """Every scenario in process and live (backlog and paced, 1 and 2 workers); see the module docstring."""
    started = time.monotonic()
    out: dict[str, Any] = {"config": {"events": n_events, "rate": rate, "label_delay": label_delay, "partitions": 4}}
    for scenario, drift in (("drift", True), ("stationary", False)):
        events, labels, drift_at = messages(n_events, drift)
        with embedded_stack() as stack:  # the in-process run uses the same registered bootstrap model
            key = secrets.token_hex(16)
            registry = ModelRegistry(redis_client(Settings(), stack.redis_url), key.encode())
            register_demo_model(registry, Settings().model_name, events, labels, True, None)
            local = in_process(registry, Settings().model_name, events, labels, label_delay)
        row: dict[str, Any] = {"in_process": figures(local["alerts"], drift_at, n_events)}
        if drift:
            reference = 2 * WINDOW  # NannyML's reference: the first two windows of labelled outcomes
            row["estimate_error"] = {
                "driftline_cbpe": estimate_error(local["monitor"], reference + WINDOW - 1),
                "nannyml_cbpe": nannyml_error(local["scores"], local["labels"], reference),
            }
        for workers in (1, 2):
            for mode, paced in (("backlog", None), ("paced", rate)):
                alerts, shares, late = asyncio.run(live(events, labels, workers, paced, label_delay))
                live_row = figures(alerts, drift_at, n_events) | {"scored_per_worker": shares, "out_of_order": late}
                for delay in ("covariate_delay", "concept_delay"):
                    ours, base = live_row[delay], row["in_process"][delay]
                    if ours is not None and base:
                        live_row[f"{delay}_ratio"] = round(ours / base, 3)
                row[f"live_{workers}w_{mode}"] = live_row
        out[scenario] = row
    drift_row = out["drift"]
    live_rows = [v for k, v in drift_row.items() if k.startswith("live_")]
    out["figures"] = {
        "live_covariate_delay_median": _median([r["covariate_delay"] for r in live_rows]),
        "in_process_covariate_delay": drift_row["in_process"]["covariate_delay"],
        "live_concept_delay_median": _median([r["concept_delay"] for r in live_rows]),
        "in_process_concept_delay": drift_row["in_process"]["concept_delay"],
        "live_stationary_alerts_per_100k_max": max(
            v["false_alarms_per_100k"] for k, v in out["stationary"].items() if k.startswith("live_")
        ),
        "estimate_error": drift_row.get("estimate_error"),
    }
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def _median(values: list[int | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else None
