"""Prometheus metrics of the monitors: drift statistics per feature and detector, alerts, labels, performance.

:class:`DriftMetrics` turns :meth:`driftline.monitoring.monitor.Monitor.gauges` into gauges and counts alerts and
webhook deliveries; :data:`METRICS` is the instance registered in the process registry (what ``/metrics``
serves), tests pass their own registry. Names (all prefixed ``driftline_``; the Grafana dashboard is built from them):

========================================  =======  ===========================================================
metric                                    type     labels
========================================  =======  ===========================================================
``driftline_drift_statistic``             gauge    model, kind, feature, detector (psi, ks, wasserstein, chi2,
                                                   jensen_shannon, adwin, page_hinkley, kswin, cusum, ddm, ...)
``driftline_drift_p_value``               gauge    model, kind, feature, detector (windowed tests only)
``driftline_drift_score``                 gauge    model, kind, feature, detector: evidence / threshold (>= 1
                                                   is past the budget-corrected threshold)
``driftline_drift_threshold``             gauge    model, kind, feature, detector
``driftline_quality_rate``                gauge    model, feature, check (missing, out_of_range, unseen, schema)
``driftline_quality_reference_rate``      gauge    model, feature, check
``driftline_alerts_total``                counter  model, kind, severity
``driftline_alerts_deduplicated_total``   counter  model (alerts another worker already raised)
``driftline_alert_dedup_fallbacks_total`` counter  model (Redis unavailable: deduplicated locally)
``driftline_label_lag_seconds``           gauge    model (median delay between event and joined label)
``driftline_rolling_metric``              gauge    model, metric (accuracy or mae over the last labels)
``driftline_estimated_metric``            gauge    model, metric (label-free estimate, classifiers)
``driftline_monitor_events``              gauge    model, stage (scoring: events, learning: labelled outcomes
                                                   the stage's monitor observed)
``driftline_false_alarm_alpha``           gauge    model, stage (per-test level after the budget correction)
``driftline_webhook_deliveries_total``    counter  outcome (delivered, failed)
========================================  =======  ===========================================================

Label coverage (labelled / scored events) is not a gauge: the learner of a model and its scorers may be different
workers, so it is the ratio of the fleet's counters, ``driftline_labels_learned_total`` over
``driftline_events_scored_total`` (the dashboard's panel and the recording rule ``driftline:label_coverage:ratio1h``
in ``deploy/prometheus/rules.yml``).

Examples
--------
>>> from prometheus_client import CollectorRegistry, generate_latest
>>> registry = CollectorRegistry()
>>> metrics = DriftMetrics(registry)
>>> metrics.init_model("m")
>>> metrics.update({"model": "m", "events": 10, "alpha": 1e-5, "detectors": [
...     {"kind": "data_drift", "feature": "x", "detector": "ks", "statistic": 0.2, "p_value": 0.01,
...      "threshold": 0.13, "score": 0.4}],
...     "quality": [], "performance": {"metric": "accuracy", "rolling": 0.9, "estimated": 0.88},
...     "labels": {"lag_seconds": 3.5, "coverage": 0.5}, "duplicates_suppressed": 0, "dedup_fallbacks": 0},
...     stage="scoring")
>>> text = generate_latest(registry).decode()
>>> 'driftline_monitor_events{model="m",stage="scoring"} 10.0' in text
True
>>> 'driftline_alerts_total{kind="data_drift",model="m",severity="critical"} 0.0' in text
True
>>> 'driftline_drift_statistic{detector="ks",feature="x",kind="data_drift",model="m"} 0.2' in text
True
>>> 'driftline_estimated_metric{metric="accuracy",model="m"} 0.88' in text
True
"""

from __future__ import annotations

import math
from typing import Any, get_args

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from driftline.contract.records import Alert, AlertKind, Severity
from driftline.streams.metrics import init_model_counters

DETECTOR_LABELS = ("model", "kind", "feature", "detector")


class DriftMetrics:
    """The monitoring metrics in ``registry``; the default, :data:`METRICS`, lives in the process registry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        registry = REGISTRY if registry is None else registry

        def gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        def counter(name: str, doc: str, labels: tuple[str, ...]) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.statistic = gauge("driftline_drift_statistic", "Latest drift statistic per detector.", DETECTOR_LABELS)
        self.p_value = gauge("driftline_drift_p_value", "Latest p-value of windowed drift tests.", DETECTOR_LABELS)
        self.score = gauge("driftline_drift_score", "Evidence relative to the corrected threshold.", DETECTOR_LABELS)
        self.threshold = gauge("driftline_drift_threshold", "Threshold of the drift statistic.", DETECTOR_LABELS)
        self.quality = gauge("driftline_quality_rate", "Rolling data-quality rate.", ("model", "feature", "check"))
        self.quality_reference = gauge(
            "driftline_quality_reference_rate", "Reference data-quality rate.", ("model", "feature", "check")
        )
        self.alerts = counter("driftline_alerts_total", "Alerts raised.", ("model", "kind", "severity"))
        self.deduplicated = counter(
            "driftline_alerts_deduplicated_total", "Alerts another worker already raised.", ("model",)
        )
        self.dedup_fallbacks = counter(
            "driftline_alert_dedup_fallbacks_total", "Local dedup while Redis was down.", ("model",)
        )
        self.label_lag = gauge("driftline_label_lag_seconds", "Median delay from event to joined label.", ("model",))
        self.rolling = gauge("driftline_rolling_metric", "Realised metric over the last labels.", ("model", "metric"))
        self.estimated = gauge("driftline_estimated_metric", "Label-free metric estimate.", ("model", "metric"))
        self.events = gauge(
            "driftline_monitor_events",
            "Events (scoring) or outcomes (learning) the monitor observed.",
            ("model", "stage"),
        )
        self.alpha = gauge(
            "driftline_false_alarm_alpha", "Per-test level after the budget correction.", ("model", "stage")
        )
        self.webhook = counter("driftline_webhook_deliveries_total", "Alert webhook deliveries.", ("outcome",))
        self._seen: dict[tuple[str, str], tuple[int, int]] = {}

    def init_model(self, model: str) -> None:
        """Create ``model``'s counters at 0, so a panel shows 0 rather than "No data" before the first increment."""
        for kind in get_args(AlertKind):
            for severity in get_args(Severity):
                self.alerts.labels(model, kind, severity)
        self.deduplicated.labels(model)
        self.dedup_fallbacks.labels(model)
        for outcome in ("delivered", "failed"):
            self.webhook.labels(outcome)

    def update(self, gauges: dict[str, Any], stage: str) -> None:
        """Set every gauge from :meth:`driftline.monitoring.monitor.Monitor.gauges` of ``stage``'s monitor
        (``scoring`` or ``learning``: both monitor a model, and neither overwrites the other's gauges)."""
        model = gauges["model"]
        for d in gauges.get("detectors", []):
            labels = (model, d["kind"], d["feature"], d["detector"])
            _set(self.statistic, labels, d.get("statistic"))
            _set(self.p_value, labels, d.get("p_value"))
            _set(self.score, labels, d.get("score"))
            _set(self.threshold, labels, d.get("threshold"))
        for q in gauges.get("quality", []):
            labels = (model, q["feature"], q["check"])
            _set(self.quality, labels, q.get("rate"))
            _set(self.quality_reference, labels, q.get("reference_rate"))
        performance = gauges.get("performance", {})
        metric = performance.get("metric", "accuracy")
        _set(self.rolling, (model, metric), performance.get("rolling"))
        _set(self.estimated, (model, metric), performance.get("estimated"))
        labels_info = gauges.get("labels", {})
        _set(self.label_lag, (model,), labels_info.get("lag_seconds"))
        _set(self.events, (model, stage), int(gauges.get("events", 0)) + int(gauges.get("outcomes", 0)))
        _set(self.alpha, (model, stage), gauges.get("alpha"))
        duplicates, fallbacks = int(gauges.get("duplicates_suppressed", 0)), int(gauges.get("dedup_fallbacks", 0))
        seen_duplicates, seen_fallbacks = self._seen.get((model, stage), (0, 0))
        if duplicates > seen_duplicates:
            self.deduplicated.labels(model).inc(duplicates - seen_duplicates)
        if fallbacks > seen_fallbacks:
            self.dedup_fallbacks.labels(model).inc(fallbacks - seen_fallbacks)
        self._seen[model, stage] = (max(duplicates, seen_duplicates), max(fallbacks, seen_fallbacks))

    def count_alert(self, alert: Alert) -> None:
        """Count one published alert."""
        self.alerts.labels(alert.model, alert.kind, alert.severity).inc()

    def count_webhook(self, delivered: bool) -> None:
        """Count one webhook delivery outcome (after its retries)."""
        self.webhook.labels("delivered" if delivered else "failed").inc()


#: The process-wide metrics (registered in prometheus_client's default registry on import).
METRICS = DriftMetrics()


def init_model_metrics(model: str) -> None:
    """Create every per-model counter of ``model`` at 0 in the process registry (streaming and monitoring)."""
    init_model_counters(model)
    METRICS.init_model(model)


def _set(gauge: Gauge, labels: tuple[str, ...], value: Any) -> None:
    if value is None:
        return
    number = float(value)
    if math.isnan(number):
        return
    gauge.labels(*labels).set(number)
