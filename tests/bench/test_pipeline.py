"""`driftline bench pipeline` end to end on a small stream: every figure is measured and printed (no timing
is asserted: speed is recorded in BENCHMARKS.md, not tested)."""

from __future__ import annotations

import sys

import pytest

from driftline.bench.pipeline import run

pytestmark = pytest.mark.integration


def test_bench_pipeline_measures_both_sides_of_the_ratio_and_the_workers_cpu_per_event() -> None:
    result = run(events=3000)
    assert result["events"] == 3000
    assert result["inprocess_eps"] > 0 and result["pipeline_eps"] > 0
    assert result["ratio"] == round(result["pipeline_eps"] / result["inprocess_eps"], 3)
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["raw_consume_eps"] > 0 and result["faust_consume_eps"] > 0
    if sys.platform == "linux":
        assert result["worker_cpu_us_per_event"] > 0, "the worker's CPU time over the events it scored"
