"""What Redis keeps as the stream grows: a small `driftline bench state` run on the real stack."""

from __future__ import annotations

import pytest

from driftline.bench import state

pytestmark = pytest.mark.integration


def test_events_waiting_for_labels_cost_redis_memory_in_join_records():
    result = state.run(events=1_000, warmup=200)
    print(f"\nstate: {result}")
    by_family = result["redis_bytes_by_family"]
    assert by_family["waiting"]["join"] > by_family["baseline"].get("join", 0), "waiting events hold join records"
    assert result["redis_bytes_per_waiting_event"] > 0
    assert result["redis_used_memory"]["learned"] > 0 and result["redis_bytes_after_learning_ratio"] > 0
