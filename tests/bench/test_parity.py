"""The live learning path is exactly prequential: a small `driftline bench parity` run on the real stack."""

from __future__ import annotations

import pytest

from driftline.bench import parity

pytestmark = pytest.mark.integration


def test_live_accuracy_equals_rivers_delayed_progressive_validation_replayed_at_the_served_versions_lag(stack):
    result = parity.run(events=2_000, delay=50, stack=stack)
    print(f"\nparity: {result}")
    assert result["live_metric"] == result["live_metric_from_predictions"], "the learner scores what was served"
    assert result["live_metric"] == result["replayed_metric"], "each served version holds exactly its labels"
    assert result["live_lag_events"]["p50"] >= result["offline_lag_events"], "no label is learned before its time"
    assert result["versions_served"] > 1, "snapshots were hot-reloaded while the stream ran"
    assert result["live_labels_per_s_end_to_end"] > 0 and 0.9 <= result["ratio"] <= 1.1
