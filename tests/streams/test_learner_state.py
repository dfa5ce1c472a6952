"""The learner's checkpoint in the real redis-server: written in one transaction with its rows, restored as it
was; a learner with no checkpoint whose current version is refused starts from the newest one that verifies."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from driftline.contract import keys
from driftline.contract.labelled import read_rows
from driftline.models.bootstrap import bootstrap_model
from driftline.models.champion import PairedComparison
from driftline.models.learner import OnlineLearner
from driftline.models.reference import ReferenceProfile
from driftline.models.registry import ModelRegistry
from driftline.monitoring.monitor import Monitor
from driftline.streams.connections import async_redis_client
from driftline.streams.learner_state import LearnerStore, checkpointed_versions, learned_count
from driftline.streams.redis_dedup import RedisDeduplicator
from driftline.streams.shadow_challenger import ShadowChallenger
from driftline.streams.watch import Watch

pytestmark = pytest.mark.integration


def store_for(settings, redis_client) -> tuple[LearnerStore, ModelRegistry]:
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    watch = Watch("learning", settings, registry, redis_client, RedisDeduplicator(redis_client))
    return LearnerStore(settings, registry, async_redis_client(settings, settings.redis_url), watch), registry


def register_three(registry: ModelRegistry, name: str) -> None:
    model, schema, task = bootstrap_model(samples=300)
    for parent in (None, 1, 2):
        registry.register(name, model, schema=schema, task=task, parent=parent)


def test_a_checkpoint_is_restored_as_written_with_its_rows_in_the_labelled_stream(settings, redis_client):
    store, registry = store_for(settings, redis_client)
    register_three(registry, settings.model_name)

    async def run() -> None:
        state = await store.load(settings.model_name)
        assert state is not None and state.base_version == 3 and await store.load("unknown") is None
        x = {"salary": 50_000.0, "age": 40.0}
        assert state.learner.learn("e1", x, True, True, {"True": 0.8, "False": 0.2})
        state.learner.mark_offset(settings.topic("labels"), 2, 41)
        state.rows.append((x, True))
        await store.write(state)
        restored = await store.load(settings.model_name)
        assert restored is not None and restored.base_version == 3
        assert restored.learner.next_offset(settings.topic("labels"), 2) == 42
        assert restored.learner.learn("e1", x, True) is False, "learned ids come back with the checkpoint"
        assert await learned_count(store.client, settings.redis_prefix, settings.model_name) == 1
        await store.client.aclose()

    asyncio.run(run())
    assert len(read_rows(redis_client, keys.labelled(settings.redis_prefix, settings.model_name))) == 1


def test_the_rows_of_a_checkpoint_are_appended_in_order_as_blocks_of_at_most_2000_rows_one_xadd_each(
    settings, redis_client, monkeypatch
):
    store, registry = store_for(settings, redis_client)
    register_three(registry, settings.model_name)
    rows = [({"salary": float(i), "age": 30.0}, i % 3 == 0) for i in range(2500)]

    sent: list[str] = []
    execute = aioredis.client.Pipeline.execute

    async def recording(pipe, *args, **kwargs):
        sent.extend(str(command[0][0]).upper() for command in pipe.command_stack)
        return await execute(pipe, *args, **kwargs)

    monkeypatch.setattr(aioredis.client.Pipeline, "execute", recording)

    async def run() -> None:
        state = await store.load(settings.model_name)
        assert state is not None
        state.rows += rows
        sent.clear()
        await store.write(state)
        await store.client.aclose()

    asyncio.run(run())
    assert sent.count("XADD") == 2 and sent.count("EVAL") == 1, f"one XADD a block of 2,000 rows, one cap: {sent}"
    stream = keys.labelled(settings.redis_prefix, settings.model_name)
    assert [int(f[b"n"]) for _, f in redis_client.xrange(stream)] == [2000, 500]
    assert read_rows(redis_client, stream) == rows


def test_with_no_checkpoint_and_the_current_version_refused_the_learner_starts_from_the_newest_that_verifies(
    settings, redis_client
):
    store, registry = store_for(settings, redis_client)
    register_three(registry, settings.model_name)
    for version in (2, 3):
        redis_client.set(
            keys.model(settings.redis_prefix, settings.model_name, f"blob:{version}"), pickle.dumps("forged")
        )

    async def run() -> int:
        state = await store.load(settings.model_name)
        await store.client.aclose()
        assert state is not None
        return state.base_version

    assert asyncio.run(run()) == 1


def test_snapshots_prune_the_registry_to_keep_versions_and_keep_what_the_checkpoint_stands_on(settings, redis_client):
    """12 snapshots with keep_versions 3: the registry holds the 3 pinned versions registered by hand, the newest 3
    and nothing else; the stored checkpoint's base and challenger lineage are read back and kept by `prune`."""
    settings = settings.model_copy(update={"keep_versions": 3})
    store, registry = store_for(settings, redis_client)
    name = settings.model_name
    register_three(registry, name)

    async def run() -> None:
        state = await store.load(name)
        assert state is not None
        for _ in range(12):
            await store.snapshot(state)
        assert state.base_version == 15
        state.challenger = ShadowChallenger(root=5, version=9, learner=None)
        state.comparison = (5, PairedComparison(alpha=0.05))
        await store.write(state)
        await store.client.aclose()

    asyncio.run(run())
    assert [m.version for m in registry.versions(name)] == [1, 2, 3, 13, 14, 15]
    assert checkpointed_versions(redis_client, settings.redis_prefix, name) == {15, 5, 9}
    assert registry.history(name) == [1, 2, 3, 13, 14, 15]


class OffTheLoopOnly(redis.Redis):
    """A synchronous client that refuses to be called from a running event loop (it would block every task)."""

    def execute_command(self, *args, **options):  # type: ignore[no-untyped-def]
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return super().execute_command(*args, **options)
        raise AssertionError(f"synchronous Redis {args[0]} on the event loop")


def test_restoring_a_learner_and_its_monitor_sends_no_synchronous_redis_command_on_the_event_loop(
    settings, redis_client
):
    """A checkpoint without a learning monitor: the new monitor's reference profile is read off the event loop."""
    guarded = OffTheLoopOnly(connection_pool=redis_client.connection_pool)
    store, registry = store_for(settings, guarded)
    model, schema, task = bootstrap_model(samples=300)
    profile = ReferenceProfile.from_rows([{"salary": float(i), "age": 30.0} for i in range(50)])
    registry.register(settings.model_name, model, schema=schema, task=task, reference=profile)

    async def run() -> None:
        state = await store.load(settings.model_name)
        assert state is not None
        await store.write(state)  # no monitor yet: the checkpoint holds none
        assert await store.load(settings.model_name) is not None
        meta = await asyncio.to_thread(registry.get, settings.model_name)
        monitor = await store.watch.restore(meta, None)
        assert monitor is store.watch.monitor(meta)
        await store.client.aclose()

    asyncio.run(run())

    async def on_the_loop() -> None:
        guarded.get("anything")

    with pytest.raises(AssertionError, match="synchronous Redis GET on the event loop"):  # the guard guards
        asyncio.run(on_the_loop())


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_the_checkpoint_is_pickled_and_signed_off_the_event_loop(settings, redis_client, monkeypatch):
    """A 2 MB learner took ~150 ms to pickle and sign: the learner and its monitor are sealed in a thread, never
    on the loop that scores events (each call says whether it ran on the loop)."""
    store, registry = store_for(settings, redis_client)
    register_three(registry, settings.model_name)
    calls: list[tuple[str, bool]] = []

    def spy(what: str, method: Any) -> Any:
        def sealing(*args: Any, **kwargs: Any) -> bytes:
            calls.append((what, on_event_loop()))
            return method(*args, **kwargs)

        return sealing

    monkeypatch.setattr(OnlineLearner, "checkpoint", spy("learner", OnlineLearner.checkpoint))
    monkeypatch.setattr(Monitor, "snapshot", spy("monitor", Monitor.snapshot))

    async def run() -> None:
        state = await store.load(settings.model_name)
        assert state is not None
        meta = await asyncio.to_thread(registry.get, settings.model_name)
        await store.watch.restore(meta, None)  # the learning monitor, checkpointed with the learner
        state.learner.learn("e1", {"salary": 50_000.0, "age": 40.0}, True, True, {"True": 0.8, "False": 0.2})
        await store.write(state)
        await store.client.aclose()

    asyncio.run(run())
    assert sorted(calls) == [("learner", False), ("monitor", False)]
    stored = redis_client.hgetall(keys.learner(settings.redis_prefix, settings.model_name))
    purpose = keys.learner_purpose(settings.model_name)
    assert OnlineLearner.restore(stored[b"checkpoint"], hmac_key=settings.keyring(), purpose=purpose).learned == 1


def test_after_a_snapshot_only_the_base_version_is_written_and_the_learner_restores_on_it(
    settings, redis_client, monkeypatch
):
    """The checkpoint written just before a champion snapshot holds the learner: write_base moves its base version
    to the snapshot without pickling anything, and a restarted learner resumes on the snapshot with every label."""
    store, registry = store_for(settings, redis_client)
    register_three(registry, settings.model_name)

    async def run() -> int:
        state = await store.load(settings.model_name)
        assert state is not None
        state.learner.learn("e1", {"salary": 50_000.0, "age": 40.0}, True, True, {"True": 0.8, "False": 0.2})
        await store.write(state)
        await store.snapshot(state)

        def no_pickle(*args: Any, **kwargs: Any) -> bytes:
            raise AssertionError("the learner was pickled again")

        monkeypatch.setattr(OnlineLearner, "checkpoint", no_pickle)
        monkeypatch.setattr(Monitor, "snapshot", no_pickle)
        await store.write_base(state)
        monkeypatch.undo()
        restored = await store.load(settings.model_name)
        await store.client.aclose()
        assert restored is not None and restored.learner.learned == 1 and restored.learner.has_learned("e1")
        return restored.base_version

    assert asyncio.run(run()) == 4 == registry.current_version(settings.model_name)
