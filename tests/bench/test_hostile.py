"""`driftline bench hostile` on a small stream in two parts: every count checked, RSS read after each part."""

from __future__ import annotations

import pytest

from driftline.bench import hostile

pytestmark = pytest.mark.integration


def test_each_part_of_the_stream_comes_out_before_the_next_and_the_worker_rss_is_read_after_each() -> None:
    result = hostile.run(events=2_000, rounds=2, timeout=240)
    print(f"\nhostile: {result}")
    assert (result["events"], result["hostile_events"], result["hostile_labels"]) == (2_000, 200, 200)
    assert result["valid_scored_pct"] == result["valid_labels_learned_pct"] == 100.0
    assert result["hostile_dead_lettered_pct"] == result["hostile_labels_dead_lettered_pct"] == 100.0
    assert result["duplicate_predictions"] == 0
    worker = result["worker"]
    assert len(worker["rss_mib_drained_after_each_part"]) == 2 and min(worker["rss_mib_drained_after_each_part"]) > 0
    assert len(worker["rss_mib_max_in_each_part"]) == 2
