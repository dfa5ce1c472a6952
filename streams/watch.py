"""Monitors in the worker: one per model and role, restored from checkpoints, and the actions alerts take.

The scoring role watches features, predictions and data quality (in the worker that owns the model's ``monitor``
partition: :mod:`driftline.streams.ordered_monitor`); the learning role watches outcomes (concept
drift, realised metric, label lag). Scoring monitors are checkpointed to Redis every few seconds and on stop;
the learning monitor is checkpointed together with the learner (one Redis write), so its evidence is exactly as
consistent as the model's. Actions per alert kind come from settings: ``rollback`` asks the registry for the
previous version, ``adjust_threshold`` stores the decision threshold scorers apply to binary predictions,
``retrain`` queues a retrain request that ``driftline offline retrain`` consumes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import pickle
import time
from typing import Literal

import redis

from driftline.contract import keys
from driftline.contract.records import Alert
from driftline.contract.settings import Settings
from driftline.models.registry import ModelRegistry
from driftline.models.version import ModelVersion, UnknownModelError
from driftline.monitoring.actions import retrain_request
from driftline.monitoring.checkpoint import seal_pickled
from driftline.monitoring.monitor import Monitor, MonitorConfig
from driftline.streams.metrics import REDIS_ERRORS
from driftline.streams.metrics_drift import METRICS, init_model_metrics
from driftline.streams.redis_dedup import RedisDeduplicator

log = logging.getLogger(__name__)

Role = Literal["scoring", "learning"]
MAX_RETRAIN_REQUESTS = 1000
RETRAIN_LOOKBACK_MS = 24 * 3600 * 1000
#: Seconds between attempts to restore a monitor whose checkpoint Redis could not give.
RESTORE_RETRY_SECONDS = 5.0


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
        #: Monitors started while Redis could not give their checkpoint: never saved (they would overwrite the
        #: checkpoint's evidence), replaced by the checkpoint once Redis answers; name -> next attempt (monotonic).
        self.provisional: dict[str, float] = {}
        #: Per monitor, the digest of the pickle last written: an unchanged monitor is not sealed and written again.
        self.written: dict[str, bytes] = {}

    def key(self, name: str) -> str:
        return keys.monitor(self.prefix, name, self.role)

    async def ensure(self, metas: list[ModelVersion]) -> None:
        """Restore (off the event loop) the monitors of ``metas`` not in memory yet, and retry provisional ones."""
        now = time.monotonic()
        for meta in metas:
            due = self.provisional.get(meta.name)
            if (meta.name in self.monitors and due is None) or (due is not None and now < due):
                continue
            try:
                blob = await asyncio.to_thread(self.client.get, self.key(meta.name))
            except redis.RedisError as exc:
                self._provisional(meta, exc)
                continue
            restored = await asyncio.to_thread(self._build, meta, blob)
            if due is not None:
                log.warning("monitor of %s restored from its checkpoint once Redis answered", meta.name)
            self.provisional.pop(meta.name, None)
            self.monitors[meta.name] = restored
            self.written.pop(meta.name, None)

    def purpose(self, name: str) -> str:
        """What this role's checkpoint of ``name`` is signed for (it verifies for nothing else)."""
        return keys.monitor_purpose(name, self.role)

    def monitor(self, meta: ModelVersion) -> Monitor:
        """The monitor of ``meta.name``, which :meth:`ensure` or :meth:`restore` put in memory (no I/O: this runs on
        the event loop)."""
        return self.monitors[meta.name]

    async def restore(self, meta: ModelVersion, blob: bytes | None) -> Monitor:
        """The monitor of ``meta.name`` restored from ``blob``, else new with its version's reference profile; built
        off the event loop (reading the profile is Redis I/O)."""
        self.monitors[meta.name] = await asyncio.to_thread(self._build, meta, blob)
        self.written.pop(meta.name, None)
        return self.monitors[meta.name]

    def _provisional(self, meta: ModelVersion, exc: Exception) -> Monitor:
        REDIS_ERRORS.labels("monitor_restore").inc()
        if meta.name not in self.monitors:
            log.warning(
                "monitor checkpoint of %s unreachable (%r): a provisional monitor watches until Redis answers, "
                "then the checkpoint replaces it",
                meta.name,
                exc,
            )
            self.monitors[meta.name] = self._build(meta, None, reference=False)
        self.provisional[meta.name] = time.monotonic() + RESTORE_RETRY_SECONDS
        return self.monitors[meta.name]

    def _build(self, meta: ModelVersion, blob: bytes | None, reference: bool = True) -> Monitor:
        """The monitor restored from ``blob``, else a new one (with the version's reference profile). A scoring
        monitor keeps no event time per event: it never sees outcomes (the learner's gets the events' times)."""
        monitor = self._restored(meta, blob, reference)
        monitor.track_event_times = self.role != "scoring"
        return monitor

    def _restored(self, meta: ModelVersion, blob: bytes | None, reference: bool) -> Monitor:
        init_model_metrics(meta.name)
        if blob:
            try:
                return Monitor.restore(
                    blob, self.settings.keyring(), deduplicator=self.dedup, purpose=self.purpose(meta.name)
                )
            except Exception as exc:  # noqa: BLE001 - refused, or pickled by another code version: start fresh
                log.error("monitor checkpoint of %s not restored, starting fresh: %r", meta.name, exc)
        profile = None
        if reference:
            try:
                profile = self.registry.reference(meta.name, meta.version)
            except (UnknownModelError, redis.RedisError):
                profile = None
        return Monitor(meta.name, meta.feature_schema(), meta.task, profile, self.config, self.dedup)

    def pickled(self) -> dict[str, bytes]:
        """Every checkpointable monitor pickled now (on the event loop: a consistent state, not one torn by
        batches observed while a thread pickles it)."""
        return {
            name: pickle.dumps(monitor, protocol=pickle.HIGHEST_PROTOCOL)
            for name, monitor in self.monitors.items()
            if name not in self.provisional
        }

    def write(self, pickled: dict[str, bytes]) -> bool:
        """Seal and store :meth:`pickled` checkpoints (blocking: run it in a thread), skipping a monitor whose pickle
        is the one this watch last wrote (an idle monitor: its checkpoint already holds it); Redis errors are
        counted. True when every checkpoint is in Redis."""
        key = self.settings.keyring()
        stored = True
        for name, state in pickled.items():
            digest = hashlib.blake2b(state, digest_size=16).digest()
            if self.written.get(name) == digest:
                continue
            try:
                self.client.set(self.key(name), seal_pickled(state, key, self.purpose(name)))
            except redis.RedisError:
                REDIS_ERRORS.labels("monitor_checkpoint").inc()
                stored = False
            else:
                self.written[name] = digest
        return stored

    async def save(self) -> bool:
        """Checkpoint every monitor (scoring role) that changed since it was last written: pickled on the loop,
        sealed and written off it. True when every checkpoint is in Redis."""
        return await asyncio.to_thread(self.write, self.pickled())

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
