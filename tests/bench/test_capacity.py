"""The capacity model: its arithmetic (pure), and `driftline bench capacity` measuring the costs with one worker and
two on the real stack (no speed is asserted)."""

from __future__ import annotations

import pytest

from driftline.bench.capacity import Costs, Workload, plan, run

COSTS = Costs(
    worker_cpu_us_per_event=40.0,
    worker_idle_cores=0.0,
    kafka_bytes_per_event=700.0,
    kafka_bytes_per_label=80.0,
    redis_bytes_per_waiting_event=150.0,
    learn_labels_per_s=50_000.0,
)


def test_resources_grow_with_the_rate_and_workers_never_outnumber_partitions():
    plans = [plan(COSTS, Workload(events_per_s=rate)) for rate in (1_000, 10_000, 100_000, 1_000_000)]
    for smaller, larger in zip(plans, plans[1:], strict=False):
        assert larger["workers"] >= smaller["workers"] and larger["redis_gb"] > smaller["redis_gb"]
        assert larger["kafka_mb_per_s"] == pytest.approx(10 * smaller["kafka_mb_per_s"], rel=0.01)
    assert all(p["partitions"] >= 2 * p["workers"] for p in plans)
    assert plans[2]["workers"] == 6, "100k events/s x 40 us = 4 cores, at 0.7 of a core per worker"
    assert plans[-1]["learner_load"] == 1.0, "50,000 labels/s: one learner is exactly busy"


def test_what_a_worker_uses_idle_comes_off_each_workers_budget():
    busy = Costs(**{**COSTS.__dict__, "worker_idle_cores": 0.2})
    assert plan(busy, Workload(events_per_s=100_000))["workers"] == 8, "4 cores at 0.5 of a core each"
    assert plan(busy, Workload(events_per_s=100_000))["worker_cores"] == pytest.approx(4 + 8 * 0.2)


def test_redis_memory_is_the_events_still_waiting_times_their_bytes():
    """Never-labelled events wait the whole TTL, labelled ones their label's delay: a shorter TTL bounds Redis."""
    week = plan(COSTS, Workload(events_per_s=1_000, label_coverage=0.0, label_ttl_s=7 * 86_400))
    assert week["waiting_events"] == 1_000 * 7 * 86_400 and week["redis_gb"] == pytest.approx(90.72)
    day = plan(COSTS, Workload(events_per_s=1_000, label_coverage=0.0, label_ttl_s=86_400))
    assert day["redis_gb"] == pytest.approx(week["redis_gb"] / 7, rel=0.01) and day["redis_masters"] == 1
    all_labelled = plan(COSTS, Workload(events_per_s=1_000, label_coverage=1.0, label_delay_s=60))
    assert all_labelled["waiting_events"] == 60_000 and all_labelled["labels_per_s"] == 1_000


@pytest.mark.integration
def test_bench_capacity_measures_the_costs_with_one_and_two_workers_and_plans_three_rates():
    result = run(events=2_000, workers=2)
    for side in ("one_worker", "workers"):
        figures = result[side]
        assert figures["events"] == 2_000 and figures["events_per_s"] > 0
        assert figures["worker_cpu_us_per_event"] > 0 and figures["redis_bytes_per_waiting_event"] > 0
        assert 0 < figures["worker_idle_cores"] < 1, "a worker with no event still runs its timers"
        assert figures["kafka_bytes_per_event"] > 200, "an Agrawal event and its prediction"
    assert result["workers"]["workers"] == 2 and set(result["plan"]) == {"1000", "10000", "100000"}
    assert result["check"]["kafka_bytes_per_event_ratio"] == pytest.approx(1.0, abs=0.05), "same records"
