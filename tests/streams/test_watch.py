"""Monitor checkpoints against a real redis-server: taken from a consistent state, and never overwritten by a
monitor started while Redis could not give the checkpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from driftline.contract import keys
from driftline.contract.settings import Settings
from driftline.embedded.stack import REDIS_USER, EmbeddedServer, start_redis
from driftline.models.bootstrap import synthetic_stream
from driftline.models.registry import ModelRegistry
from driftline.monitoring.dedup import InMemoryDeduplicator
from driftline.streams import watch as watch_module
from driftline.streams.app import ensure_default_model
from driftline.streams.watch import Watch

pytestmark = pytest.mark.integration


PASSWORD = "watch-test"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedServer]:
    server = start_redis(tmp_path, PASSWORD)
    try:
        yield server
    finally:
        server.stop()


def _observe(watch: Watch, meta, start: int, n: int) -> None:
    pairs = list(synthetic_stream(start + n))[start:]
    watch.monitor(meta).observe_events(
        [e["event_id"] for e, _ in pairs],
        [e["features"] for e, _ in pairs],
        [True] * n,
        [{"True": 0.6, "False": 0.4}] * n,
        1,
        pairs[0][0]["ts"],
    )


def test_checkpoints_are_consistent_and_a_provisional_monitor_never_overwrites_one(own_redis, monkeypatch) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{own_redis.port}/0", model_hmac_key="k")
    client = redis.Redis(
        host="127.0.0.1",
        port=own_redis.port,
        username=REDIS_USER,
        password=PASSWORD,
        socket_timeout=1,
        retry_on_timeout=False,
    )
    registry = ModelRegistry(client, settings.keyring(), prefix=settings.redis_prefix)
    ensure_default_model(registry, "default")
    meta, _ = registry.load("default")

    def new_watch() -> Watch:
        return Watch("scoring", settings, registry, client, InMemoryDeduplicator())

    async def scenario() -> dict[str, int]:
        first = new_watch()
        await first.ensure([meta])
        _observe(first, meta, 0, 500)
        pickled = first.pickled()  # the state at 500 events ...
        _observe(first, meta, 500, 500)  # ... while the loop goes on observing
        await asyncio.to_thread(first.write, pickled)
        restored = new_watch()
        await restored.ensure([meta])
        at_checkpoint = restored.monitors["default"].events
        _observe(restored, meta, 1000, 100)
        learning = Watch("learning", settings, registry, client, InMemoryDeduplicator())
        await learning.ensure([meta])
        _observe(learning, meta, 0, 100)
        # the scoring monitors, new or restored, keep no event time per event (they never see outcomes)
        event_times = [len(w.monitors["default"]._event_ts) for w in (first, restored, learning)]

        own_redis.stop()
        during = new_watch()
        await during.ensure([meta])  # Redis down: provisional
        _observe(during, meta, 0, 100)
        provisional = set(during.provisional)
        own_redis.restart()
        await during.save()  # Redis is back before the retry: the provisional monitor is not saved
        kept = new_watch()
        await kept.ensure([meta])
        monkeypatch.setattr(watch_module, "RESTORE_RETRY_SECONDS", 0.0)
        during.provisional["default"] = 0.0
        await during.ensure([meta])  # the retry restores the checkpoint
        return {
            "at_checkpoint": at_checkpoint,
            "provisional": len(provisional),
            "kept": kept.monitors["default"].events,
            "after_retry": during.monitors["default"].events,
            "still_provisional": len(during.provisional),
            "event_times": event_times,
        }

    result = asyncio.run(scenario())
    client.close()
    assert result["at_checkpoint"] == 500, "the checkpoint holds the state it was taken at, not a torn later one"
    assert result["provisional"] == 1
    assert result["kept"] == 500, "the provisional monitor did not overwrite the checkpoint"
    assert result["after_retry"] == 500 and result["still_provisional"] == 0
    assert result["event_times"] == [0, 0, 100], "only the learner's monitor keeps the events' times"


def test_an_unchanged_monitor_is_not_written_again(own_redis) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{own_redis.port}/0", model_hmac_key="k")
    sets = []

    class Counted(redis.Redis):
        def set(self, name, value, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - redis.Redis.set's own
            sets.append(name)
            return super().set(name, value, *args, **kwargs)

    client = Counted(host="127.0.0.1", port=own_redis.port, username=REDIS_USER, password=PASSWORD)
    registry = ModelRegistry(client, settings.keyring(), prefix=settings.redis_prefix)
    ensure_default_model(registry, "default")
    meta, _ = registry.load("default")

    def writes() -> int:
        return sets.count(keys.monitor(settings.redis_prefix, "default", "scoring"))

    async def scenario() -> list[tuple[bool, int]]:
        watch = Watch("scoring", settings, registry, client, InMemoryDeduplicator())
        await watch.ensure([meta])
        _observe(watch, meta, 0, 200)
        done = []
        for observe in (False, False, True):  # written, idle (skipped), changed (written)
            if observe:
                _observe(watch, meta, 200, 50)
            before = writes()
            done.append((await watch.save(), writes() - before))
        await watch.restore(meta, client.get(watch.key("default")))  # a monitor rebuilt is written again
        before = writes()
        done.append((await watch.save(), writes() - before))
        return done

    result = asyncio.run(scenario())
    client.close()
    assert result == [(True, 1), (True, 0), (True, 1), (True, 1)]
