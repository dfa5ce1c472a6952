"""The label learner's per-batch work against the real redis-server (whole path: test_learning_crash.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from driftline.contract.records import Label
from driftline.models.registry import ModelRegistry
from driftline.streams.learning import LabelLearner
from driftline.streams.learning_stage import JoinRecord
from tests.streams.test_learner_state import register_three, store_for

pytestmark = pytest.mark.integration


def test_a_batch_feeds_the_held_monitor_without_reading_the_registry(settings, redis_client, monkeypatch):
    """The learning monitor is held from the first batch on: later batches observe their outcomes without a
    registry read (a thread hop, an HGET and a signature check per batch before)."""
    store, registry = store_for(settings, redis_client)
    register_three(registry, settings.model_name)
    learning = LabelLearner.__new__(LabelLearner)
    learning.settings, learning.registry, learning.watch, learning.store = settings, registry, store.watch, store
    learning.alerts = []
    reads: list[Any] = []
    get = ModelRegistry.get
    monkeypatch.setattr(ModelRegistry, "get", lambda self, *args: reads.append(args) or get(self, *args))
    join = JoinRecord({"salary": 50_000.0, "age": 40.0}, True, {"False": 0.2, "True": 0.8}, 0.8, 3, 10**13)

    async def run() -> int:
        state = await store.load(settings.model_name)
        assert state is not None
        for batch in range(3):
            if batch == 1:  # the first batch built the monitor from the version's metadata
                reads.clear()
            labels = [Label(event_id=f"e{batch}-{i}", label=i % 2 == 0, ts=10**12 + i) for i in range(50)]
            await learning._observe(state, labels, [join] * 50, [i % 2 == 0 for i in range(50)], [True] * 50)
        await store.client.aclose()
        return store.watch.monitors[settings.model_name].outcomes

    assert asyncio.run(run()) == 150
    assert reads == []
