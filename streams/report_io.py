"""What ``driftline report`` reads from a running deployment: the monitors' checkpoints, the served and challenger
versions (Redis) and the model's alerts (the ``alerts`` topic, from the oldest the broker keeps).

The scoring monitor's checkpoint is ``monitor:N:scoring`` (written by the scorers every few seconds); the learning
monitor's travels in the learner's checkpoint hash (``learner:N``, field ``monitor``). Both are verified with the
deployment's signing key before they are loaded.
"""

from __future__ import annotations

from typing import Any

import redis

from driftline.contract import keys
from driftline.contract.records import Alert
from driftline.contract.settings import Settings
from driftline.contract.signing import alert_keyring
from driftline.models.registry import ModelRegistry
from driftline.monitoring.monitor import Monitor
from driftline.streams.alerts_io import tail_alerts
from driftline.streams.connections import kafka_kwargs


def read_monitors(client: redis.Redis, settings: Settings, name: str) -> tuple[Monitor | None, Monitor | None]:
    """The scoring and learning monitors of model ``name`` from their checkpoints (None where there is none).

    A checkpoint that does not verify or load raises ``ValueError``.
    """
    prefix, key = settings.redis_prefix, settings.keyring()
    scoring_blob = client.get(keys.monitor(prefix, name, "scoring"))
    learning_blob = client.hget(keys.learner(prefix, name), "monitor")
    scoring = (
        Monitor.restore(scoring_blob, key, purpose=keys.monitor_purpose(name, "scoring")) if scoring_blob else None
    )
    learning = (
        Monitor.restore(learning_blob, key, purpose=keys.monitor_purpose(name, "learning")) if learning_blob else None
    )
    return scoring, learning


def read_versions(client: redis.Redis, settings: Settings, name: str) -> dict[str, Any]:
    """The served and challenger versions of model ``name`` and the promotion history."""
    registry = ModelRegistry(client, settings.keyring(), prefix=settings.redis_prefix)
    return {
        "served": registry.current_version(name),
        "challenger": registry.challenger_version(name),
        "history": registry.history(name),
    }


async def read_alerts(settings: Settings, broker_url: str, quiet_seconds: float = 2.0) -> list[Alert]:
    """Every alert the broker keeps on the ``alerts`` topic signed by the workers (read until ``quiet_seconds``
    without a new one; an alert without a valid signature header is left out)."""
    found: list[Alert] = []
    await tail_alerts(
        settings.topic("alerts"),
        kafka_kwargs(settings, broker_url),
        found.append,
        from_beginning=True,
        timeout=quiet_seconds,
        verify=alert_keyring(settings.keyring()),
    )
    return found
