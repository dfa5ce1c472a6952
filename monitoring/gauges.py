"""The monitor's current statistics as one plain dict: what Prometheus gauges and reports read.

Pure: :func:`monitor_gauges` reads a :class:`driftline.monitoring.monitor.Monitor` (live, or restored from its
checkpoint) and returns plain values; :class:`driftline.streams.metrics_drift.DriftMetrics` (above monitoring/)
turns them into Prometheus gauges. Keys: ``model``, ``events``, ``outcomes``, ``invalid``,
``detectors_budgeted``, ``alpha``, ``learning_reference``, ``detectors`` (one row per test: kind, feature,
detector, statistic, p_value, threshold, score), ``quality`` (one row per check), ``performance`` (metric,
rolling, estimated, estimated_reference), ``labels`` (lag_seconds, coverage), ``alerts`` (count per kind and
severity), ``duplicates_suppressed``, ``dedup_fallbacks``.

Examples
--------
>>> from driftline.models.features import FeatureSchema
>>> from driftline.monitoring.monitor import Monitor
>>> gauges = monitor_gauges(Monitor("m", FeatureSchema({"x": "numeric"}), "binary", None))
>>> gauges["events"], gauges["learning_reference"], gauges["performance"]["metric"]
(0, True, 'accuracy')
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.monitoring.monitor import Monitor

__all__ = ["monitor_gauges"]


def monitor_gauges(monitor: Monitor) -> dict[str, Any]:
    """Current statistics of ``monitor`` (see the module docstring)."""
    detectors: list[dict[str, Any]] = []
    quality: list[dict[str, Any]] = []
    performance: dict[str, Any] = {"metric": None, "rolling": None, "estimated": None, "estimated_reference": None}
    for family in monitor.families.values():
        part = family.gauges()
        detectors += part["detectors"]
        quality += part.get("quality", [])
        performance = part.get("performance", performance)
    alerting = monitor.alerting
    lag_ms = monitor._label_lag_ms
    return {
        "model": monitor.model,
        "events": monitor.events,
        "outcomes": monitor.outcomes,
        "invalid": monitor.invalid,
        "detectors_budgeted": monitor.detectors,
        "alpha": monitor.alpha,
        "learning_reference": monitor._feature_rows is not None,
        "detectors": detectors,
        "quality": quality,
        "performance": performance,
        "labels": {
            "lag_seconds": None if lag_ms is None else lag_ms / 1000,
            "coverage": min(1.0, monitor.outcomes / monitor.events) if monitor.events else None,
        },
        "alerts": [{"kind": k, "severity": s, "count": c} for (k, s), c in sorted(alerting.fired.items())],
        "duplicates_suppressed": alerting.duplicates,
        "dedup_fallbacks": int(getattr(alerting.dedup, "fallbacks", 0)),
    }
