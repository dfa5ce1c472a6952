"""Alert building: findings through the alert policy and deduplication into typed alert records.

:class:`AlertBuilder` turns the :class:`driftline.monitoring.detector.Finding` values of one observation into
:class:`driftline.contract.records.Alert` records: the policy (:mod:`driftline.monitoring.policy`) decides whether
and how severely a finding alerts, the deduplicator (:mod:`driftline.monitoring.dedup`) keeps two workers from
raising the same alert, and the alert carries the configured action and a readable message. Both clocks it
hands on are the monitor's: the events it counted and the event time (epoch ms) of the observation.

Examples
--------
>>> from driftline.monitoring.config import MonitorConfig
>>> from driftline.monitoring.detector import Finding, source
>>> from driftline.monitoring.window import WindowTest
>>> builder = AlertBuilder("fraud", MonitorConfig(cooldown_events=0, cooldown_seconds=0))
>>> test = WindowTest("ks", 0.31, 0.12, 1e-12, 2.4, 500, 1)
>>> [alert] = builder.build([Finding(source("data_drift", "ks", "amount", 500), test)], ["e1", "e2"], 3, 5000, 77)
>>> alert.kind, alert.feature, alert.severity, alert.event_id, alert.ts, alert.action
('data_drift', 'amount', 'warning', 'e2', 77, 'none')
>>> alert.message
'ks of amount is 0.31 (threshold 0.12, p=1e-12) over 500 values'
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Sequence

from driftline.contract.records import Alert
from driftline.monitoring.actions import choose_action
from driftline.monitoring.config import MonitorConfig
from driftline.monitoring.dedup import Deduplicator, InMemoryDeduplicator
from driftline.monitoring.detector import Finding, Source, finite
from driftline.monitoring.drift_prediction import PREDICTION
from driftline.monitoring.policy import AlertPolicy, DetectorResult
from driftline.monitoring.window import WindowTest

__all__ = ["AlertBuilder"]


class AlertBuilder:
    """Policy, deduplication and alert records of one monitor (policy state is checkpointed with it)."""

    def __init__(self, model: str, config: MonitorConfig, deduplicator: Deduplicator | None = None):
        self.model, self.config = model, config
        self.policy = AlertPolicy(config.policy_config())
        self.dedup: Deduplicator = deduplicator or InMemoryDeduplicator()
        self.fired: Counter[tuple[str, str]] = Counter()
        self.duplicates = 0
        self.invalid_reasons: Counter[str] = Counter()

    def relevant(self, key: str, score: float) -> bool:
        """Whether a result can change the policy's state: past the re-arm score, or of a disarmed detector."""
        return score >= self.config.rearm_score or key in self.policy.disarmed

    def build(
        self,
        found: Sequence[Finding],
        event_ids: Sequence[str],
        model_version: int | None,
        events: int,
        ts_ms: int | Callable[[int], int],
    ) -> list[Alert]:
        """The alerts ``found`` raises; ``events`` is the monitor's event count; ``ts_ms`` the observation's
        event time, or a function of a finding's position giving the event time of that position."""
        alerts: list[Alert] = []
        for finding in found:
            src, test = finding.source, finding.test
            if not self.relevant(src.key, test.score):
                continue
            ts = ts_ms(test.position) if callable(ts_ms) else ts_ms
            result = DetectorResult(
                src.key,
                src.kind,
                src.detector,
                src.feature,
                test.statistic,
                finite(test.threshold),
                test.score,
                test.samples,
                src.window,
                finite(test.p_value),
                test.position,
                resets=src.resets,
            )
            severity = self.policy.decide(result, events, ts)
            if severity is None:
                continue
            dedup_key = f"{self.model}:{src.kind}:{src.feature or '-'}:{src.detector}"
            ttl_ms = max(1000, int(self.config.cooldown_seconds * 1000))
            if not self.dedup.first(dedup_key, ttl_ms, ts):
                self.duplicates += 1
                continue
            event_id = event_ids[test.position] if event_ids and 0 <= test.position < len(event_ids) else None
            alert_id = hashlib.sha256(f"{self.model}|{src.key}|{event_id}|{events}".encode()).hexdigest()
            alerts.append(
                Alert(
                    alert_id=alert_id[:24],
                    kind=src.kind,
                    severity=severity,
                    model=self.model,
                    model_version=model_version,
                    feature=src.feature,
                    detector=src.detector,
                    statistic=finite(test.statistic),
                    threshold=finite(test.threshold),
                    window=src.window,
                    event_id=event_id,
                    ts=ts,
                    message=self.message(src, test),
                    action=choose_action(src.kind, self.config.actions),
                )
            )
            self.fired[(src.kind, severity)] += 1
        return alerts

    def message(self, src: Source, test: WindowTest) -> str:
        """What an alert says, in one sentence."""
        subject = src.feature or (PREDICTION if src.kind == "prediction_drift" else "error stream")
        if src.kind == "data_quality" and src.detector == "schema":
            top = ", ".join(f"{r} ({c})" for r, c in self.invalid_reasons.most_common(3))
            return f"schema violations at rate {test.statistic:.3%} over {test.samples} events; top reasons: {top}"
        if src.kind == "data_quality":
            return (
                f"{src.detector} rate of {subject} is {test.statistic:.3%} over {test.samples} events "
                f"(alert above {test.threshold:.3%}, p={test.p_value:.2g})"
            )
        if src.kind == "concept_drift":
            return f"{src.detector} detected a change of the error rate after {test.samples} labelled outcomes"
        if src.kind == "performance":
            return (
                f"estimated accuracy {test.statistic:.3f} fell below {test.threshold:.3f} "
                f"(p={test.p_value:.2g}) without labels"
            )
        if math.isfinite(test.p_value):
            return (
                f"{src.detector} of {subject} is {test.statistic:.4g} (threshold {test.threshold:.4g}, "
                f"p={test.p_value:.2g}) over {test.samples} values"
            )
        return f"{src.detector} detected a change in {subject} after {test.samples} values"
