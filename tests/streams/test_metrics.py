"""The worker's /metrics after a demo-like run: per-model counters exist at 0 from the start (no "No data" panels),
each stage's monitor has its own events gauge (the learner's count no longer overwrites the scorer's), and
labels learned / events scored (label coverage) is 1 when every event got its label.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from prometheus_client import Histogram
from prometheus_client.parser import text_string_to_metric_families

from driftline.contract.settings import Settings
from driftline.embedded.demo import demo_messages, interleave
from driftline.embedded.stack import free_port, wait_for_port
from driftline.streams.metrics import SCORING_LATENCY, observe_many
from driftline.streams.producer import message_key
from tests.harness import WorkerProcess, publish

pytestmark = pytest.mark.integration

N_EVENTS = 3000
LABEL_DELAY = 500
MODEL = "default"


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """Every sample on ``/metrics``: (name, labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_after_a_demo_run_count_each_stage_and_start_every_counter_at_zero(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    worker = WorkerProcess(settings, tmp_path, DRIFTLINE_METRICS_PORT=str(port)).start()
    try:
        wait_for_port(port, timeout=60, proc=worker.proc)
        before = scrape(port)
        for name in (
            "driftline_events_scored_total",
            "driftline_labels_learned_total",
            "driftline_model_reloads_total",
            "driftline_model_integrity_failures_total",
            "driftline_challenger_scored_total",
            "driftline_review_requests_total",
            "driftline_alerts_deduplicated_total",
        ):
            assert value(before, name, model=MODEL) == 0.0, f"{name} is not created at 0 for {MODEL}"
        assert value(before, "driftline_alerts_total", model=MODEL, kind="data_drift", severity="critical") == 0.0

        events, labels = demo_messages(None, None, N_EVENTS)
        messages = [
            (message_key(raw) if kind == "events" else MODEL.encode(), kind, raw)
            for kind, raw in interleave(events, labels, LABEL_DELAY)
        ]
        for kind in ("events", "labels"):
            asyncio.run(publish(settings, kind, [(key, raw) for key, k, raw in messages if k == kind]))

        expected = {
            ("driftline_events_scored_total", "model"): N_EVENTS,
            ("driftline_labels_learned_total", "model"): N_EVENTS,
            ("driftline_monitor_events", "scoring"): N_EVENTS,
            ("driftline_monitor_events", "learning"): N_EVENTS,
        }

        def read() -> dict[tuple[str, str], float | None]:
            samples = scrape(port)
            return {
                (name, stage): value(samples, name, model=MODEL, **({} if stage == "model" else {"stage": stage}))
                for name, stage in expected
            }

        deadline = time.monotonic() + 180
        while (seen := read()) != expected:
            assert worker.alive(), f"worker died:\n{worker.log()[-3000:]}"
            assert time.monotonic() < deadline, f"metrics after the run: {seen}, expected {expected}"
            time.sleep(0.5)
        coverage = seen["driftline_labels_learned_total", "model"] / seen["driftline_events_scored_total", "model"]
        assert coverage == 1.0
        assert "driftline_label_coverage_ratio" not in {name for name, _ in scrape(port)}
    finally:
        worker.stop()


@examples(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 20, allow_nan=False) | st.sampled_from([0.0, 0.001, 0.005, 1.0, 10.0]), max_size=50))
def test_observe_many_counts_exactly_what_one_observe_per_value_counts(amounts):
    one, many = (Histogram(name, "latency", buckets=SCORING_LATENCY._upper_bounds[:-1], registry=None) for name in "ab")
    for amount in amounts:
        one.observe(amount)
    observe_many(many, amounts)
    samples = [
        [(s.name[1:], s.labels, s.value) for s in h.collect()[0].samples if "created" not in s.name]
        for h in (one, many)
    ]
    assert samples[0][:-1] == samples[1][:-1]  # every bucket and the count
    assert samples[0][-1][2] == pytest.approx(samples[1][-1][2])  # the sum (numpy adds in another order)
