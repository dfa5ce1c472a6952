"""Monitors in the worker: one per model and role, restored from checkpoints, and the actions alerts take.

The scoring role watches features, predictions and data quality; the learning role watches outcomes (concept
drift, realised metric, label lag). Scoring monitors are checkpointed to Redis every few seconds and on stop;
the learning monitor is checkpointed together with the learner (one Redis write), so its evidence is exactly as
consistent as the model's. Actions per alert kind come from settings: ``rollback`` asks the registry for the
previous version, ``adjust_threshold`` stores the decision threshold scorers apply to binary predictions,
``retrain`` queues a retrain request that ``driftline offline retrain`` consumes.
"""

from __future__ import annotations

import logging
from typing import Literal

import redis

from driftline.contract import keys
from driftline.contract.records import Alert
from driftline.contract.settings import Settings
from driftline.models.registry import ModelRegistry
from driftline.models.version import ModelVersion, UnknownModelError
from driftline.monitoring.actions import retrain_request
from driftline.monitoring.monitor import Monitor, MonitorConfig
from driftline.streams.metrics import REDIS_ERRORS
from driftline.streams.metrics_drift import METRICS, init_model_metrics
from driftline.streams.redis_dedup import RedisDeduplicator

log = logging.getLogger(__name__)

Role = Literal["scoring", "learning"]
MAX_RETRAIN_REQUESTS = 1000
RETRAIN_LOOKBACK_MS = 24 * 3600 * 1000


def monitor_config(settings: Settings) -> MonitorConfig:
    """The monitor configuration the settings describe."""
    return MonitorConfig(
        false_alarms_per_100k=settings.false_alarms_per_100k,
        cooldown_seconds=settings.alert_cooldown_seconds,
        actions={**MonitorConfig().actions, **settings.alert_actions},
    )


class Watch:
    """The monitors of one role in this worker."""

    def __init__(
        self, role: Role, settings: Settings, registry: ModelRegistry, client: redis.Redis, dedup: RedisDeduplicator
    ):
        self.role = role
        self.settings = settings
        self.registry = registry
        self.client = client
        self.dedup = dedup
        self.prefix = settings.redis_prefix
        self.config = monitor_config(settings)
        self.monitors: dict[str, Monitor] = {}

    def key(self, name: str) -> str:
        return keys.monitor(self.prefix, name, self.role)

    def monitor(self, meta: ModelVersion, blob: bytes | None = None) -> Monitor:
        """The monitor of ``meta.name``: in memory, else restored from ``blob``/its checkpoint, else new."""
        if meta.name in self.monitors:
            return self.monitors[meta.name]
        key = self.settings.hmac_key()
        try:
            blob = blob if blob is not None else self.client.get(self.key(meta.name))
        except redis.RedisError:
            REDIS_ERRORS.labels("monitor_restore").inc()
            blob = None
        monitor = None
        if blob:
            try:
                monitor = Monitor.restore(blob, key, deduplicator=self.dedup)
            except Exception as exc:  # noqa: BLE001 - refused, or pickled by another code version: start fresh
                log.error("monitor checkpoint of %s not restored, starting fresh: %r", meta.name, exc)
        if monitor is None:
            try:
                reference = self.registry.reference(meta.name, meta.version)
            except (UnknownModelError, redis.RedisError):
                reference = None
            monitor = Monitor(meta.name, meta.feature_schema(), meta.task, reference, self.config, self.dedup)
        init_model_metrics(meta.name)
        self.monitors[meta.name] = monitor
        return monitor

    def snapshot(self, name: str) -> bytes:
        return self.monitors[name].snapshot(self.settings.hmac_key())

    def save(self) -> None:
        """Checkpoint every monitor (scoring role); Redis errors are counted, never raised."""
        for name in list(self.monitors):
            try:
                self.client.set(self.key(name), self.snapshot(name))
            except redis.RedisError:
                REDIS_ERRORS.labels("monitor_checkpoint").inc()

    def export(self) -> None:
        """Set the Prometheus gauges of every monitor."""
        for monitor in self.monitors.values():
            METRICS.update(monitor.gauges(), stage=self.role)

    def act(self, alert: Alert) -> Alert:
        """Carry out the alert's configured action; the alert comes back saying what was done."""
        METRICS.count_alert(alert)
        try:
            done = self._act(alert)
        except Exception as exc:  # noqa: BLE001 - e.g. IntegrityError: the version to roll back to is refused too
            log.error("%s of %s failed: %r", alert.action, alert.model, exc)
            done = f"{alert.action} failed: {type(exc).__name__}: {exc}"
        return alert.model_copy(update={"action": done})

    def _act(self, alert: Alert) -> str:
        if alert.action == "rollback":
            version = self.registry.rollback(alert.model)
            return f"rolled back to v{version.version}"
        if alert.action == "adjust_threshold":
            monitor = self.monitors.get(alert.model)
            threshold = monitor.recommended_threshold() if monitor is not None else None
            if threshold is None:
                return "adjust_threshold skipped: no reference positive rate"
            self.client.set(keys.threshold(self.prefix, alert.model), repr(threshold))
            return f"decision threshold set to {threshold:.4f}"
        if alert.action == "retrain":
            request = retrain_request(
                alert.model,
                alert.model_version,
                alert.alert_id,
                alert.kind,
                alert.message,
                alert.ts,
                RETRAIN_LOOKBACK_MS,
            )
            pipe = self.client.pipeline()
            pipe.lpush(keys.retrain(self.prefix, alert.model), request.model_dump_json())
            pipe.ltrim(keys.retrain(self.prefix, alert.model), 0, MAX_RETRAIN_REQUESTS - 1)
            pipe.execute()
            return f"retrain requested ({request.request_id})"
        return alert.action
