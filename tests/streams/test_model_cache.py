"""The scorer's model cache against the real redis-server: unknown names are remembered in a bounded LRU and cost
one registry lookup per batch; a refused current version at start falls back to the newest one that verifies."""

from __future__ import annotations

import asyncio
import pickle

import pytest

from driftline.contract import keys
from driftline.models.bootstrap import bootstrap_model
from driftline.models.registry import ModelRegistry
from driftline.streams import model_cache
from driftline.streams.model_cache import ModelCache

pytestmark = pytest.mark.integration


class CountingRegistry(ModelRegistry):
    """The real registry, counting the calls the cache makes."""

    calls: dict[str, int]

    def names(self) -> list[str]:
        self.calls["names"] = self.calls.get("names", 0) + 1
        return super().names()

    def load(self, name: str, version: int | None = None):  # type: ignore[no-untyped-def]
        self.calls["load"] = self.calls.get("load", 0) + 1
        return super().load(name, version)


def test_random_model_names_are_remembered_in_a_bounded_lru_with_one_lookup_per_batch(
    settings, redis_client, monkeypatch
):
    monkeypatch.setattr(model_cache, "MAX_UNKNOWN_NAMES", 50)
    registry = CountingRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    registry.calls = {}
    model, schema, task = bootstrap_model(samples=300)
    registry.register("known", model, schema=schema, task=task)
    cache = ModelCache(registry, lambda *_: None)

    async def batches() -> None:
        for batch in range(20):
            await cache.ensure({f"random-{batch}-{i}" for i in range(30)} | {"known"})

    asyncio.run(batches())
    assert cache.unknown_names == 50, "600 random names, at most 50 remembered"
    assert registry.calls == {"names": 20, "load": 1}, "one SMEMBERS a batch; only the known name is loaded"
    assert cache.get("known") is not None and cache.get("random-19-0") is None


def test_a_refused_current_version_at_start_falls_back_to_the_newest_that_verifies(settings, redis_client):
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    model, schema, task = bootstrap_model(samples=300)
    for parent in (None, 1, 2):
        registry.register("m", model, schema=schema, task=task, parent=parent)
    for version in (2, 3):
        redis_client.set(keys.model(settings.redis_prefix, "m", f"blob:{version}"), pickle.dumps("forged"))
    refused: list[tuple[str, int]] = []
    cache = ModelCache(registry, lambda name, version, reason: refused.append((name, version)))
    asyncio.run(cache.ensure({"m"}))
    loaded = cache.get("m")
    assert loaded is not None and loaded.version == 1, "served: v1, the newest that verifies"
    assert refused == [("m", 3), ("m", 2)], "each refusal reported once"
