"""Re-sign everything a keyring's old keys signed with its current key: the last step of a key rotation.

``driftline models resign`` runs :func:`resign_model` for every model: each version's metadata
(:meth:`~driftline.models.registry.ModelRegistry.resign`), the learner and shadow challenger checkpoints and
both detector checkpoints (learning and scoring). Each value is verified first (a forged one stops the command,
nothing is signed that did not verify) and written back with a compare-and-set (``WATCH``): a checkpoint a
running worker wrote meanwhile is never overwritten with the older one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from driftline.contract import keys
from driftline.contract.signing import reseal
from driftline.models.registry import ModelRegistry


@dataclass(frozen=True)
class Resigned:
    """What :func:`resign_model` re-signed for one model."""

    name: str
    versions: list[int]
    checkpoints: list[str]


def _learner_fields(name: str) -> dict[bytes, str]:
    return {
        b"checkpoint": keys.learner_purpose(name),
        b"challenger_checkpoint": keys.challenger_purpose(name),
        b"monitor": keys.monitor_purpose(name, "learning"),
    }


def _resign_hash(registry: ModelRegistry, name: str) -> list[str]:
    key = keys.learner(registry.prefix, name)

    def swap(pipe: Any) -> list[str]:
        stored = pipe.hgetall(key)
        fresh = {}
        for field, purpose in _learner_fields(name).items():
            if stored.get(field):
                blob = reseal(registry.keyring, stored[field], purpose)
                if blob is not None:
                    fresh[field] = blob
        pipe.multi()
        if fresh:
            pipe.hset(key, mapping=fresh)
        return [f"{key}#{field.decode()}" for field in fresh]

    return registry.client.transaction(swap, key, value_from_callable=True)


def _resign_value(registry: ModelRegistry, key: str, purpose: str) -> list[str]:
    def swap(pipe: Any) -> list[str]:
        stored = pipe.get(key)
        blob = reseal(registry.keyring, stored, purpose) if stored else None
        pipe.multi()
        if blob is not None:
            pipe.set(key, blob)
        return [key] if blob is not None else []

    return registry.client.transaction(swap, key, value_from_callable=True)


def resign_model(registry: ModelRegistry, name: str) -> Resigned:
    """Re-sign the versions and checkpoints of ``name`` not signed by the current key (IntegrityError, and
    nothing further written, at the first one that does not verify)."""
    versions = registry.resign(name)
    checkpoints = _resign_hash(registry, name)
    scoring = keys.monitor(registry.prefix, name, "scoring")
    checkpoints += _resign_value(registry, scoring, keys.monitor_purpose(name, "scoring"))
    return Resigned(name, versions, checkpoints)
