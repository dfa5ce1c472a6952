"""`driftline bench peers` end to end on a small stream, with the peer that CI installs (the raw librdkafka
loop): every figure is measured, every event comes out exactly once, the same model gives the same scores."""

from __future__ import annotations

import sys

import pytest

from driftline.bench.peers import run

pytestmark = pytest.mark.integration


def test_bench_peers_measures_each_system_on_the_same_events_and_checks_exactly_once() -> None:
    result = run(events=30_000, rounds=1, latency_events=300, rate=500.0, systems=("raw_confluent", "driftline"))
    assert [r["system"] for r in result["runs"]] == ["driftline", "raw_confluent"], "driftline first: the reference"
    for name, figures in result["systems"].items():
        assert figures["eps"] > 0 and figures["p50_ms"] <= figures["p99_ms"], name
        assert figures["missing"] == 0 and figures["duplicates"] == 0, name
        if sys.platform == "linux" and name == "driftline":  # 8,000 events of a fast peer may take < 1 CPU tick
            assert figures["cpu_us_per_event"] > 0, name
    assert result["systems"]["raw_confluent"]["max_score_diff"] < 1e-12, "same model, same scores"
