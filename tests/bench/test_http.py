"""`driftline bench http` on a short run: both sides are measured and every request is answered 200 (no timing is
asserted: figures go to BENCHMARKS.md)."""

from __future__ import annotations

import pytest

from driftline.bench.http import run

pytestmark = pytest.mark.integration


def test_bench_http_measures_the_api_and_the_in_process_score_of_the_same_requests() -> None:
    result = run(rate=40.0, batch_rate=4.0, seconds=1.0, concurrency=2)
    for kind, requests in (("single", 40), ("batch", 4)):
        figures = result[kind]
        assert figures["requests"] == requests and figures["errors"] == {} and figures["max_rps_errors"] == 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["max_ms"]
        assert figures["max_rps"] > 0 and figures["in_process"]["rps"] > 0
        assert figures["in_process"]["p50_ms"] <= figures["in_process"]["p99_ms"]
    assert result["goal"] == {"p99_ms": 10.0, "rate": 500.0, "met": False}  # 40 requests/s is not the goal's rate
