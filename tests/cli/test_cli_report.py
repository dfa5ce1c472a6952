"""`driftline report` on the demo's drifting stream through a real worker (real broker and Redis): the drifted
feature (salary) comes first with both distributions and its alert; the page renders in headless Chromium
without console errors (skipped when no Chromium is installed)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from driftline.contract import keys
from driftline.contract.settings import Settings
from driftline.contract.urls import masked
from driftline.embedded.demo import demo_messages, interleave
from driftline.embedded.stack import EmbeddedStack
from driftline.monitoring.monitor import Monitor
from driftline.streams.producer import message_key
from tests.browser import check_page, chromium
from tests.conftest import TEST_HMAC_KEY
from tests.harness import WorkerProcess, prediction_ids, publish, read_until, settings_env

pytestmark = pytest.mark.integration

N_EVENTS = 6000  # the demo stream drifts half-way: salary is multiplied from event 3000 on
MODEL = "default"


def run_report(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "driftline", "report", "--model", MODEL, *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def drifted(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    """A worker scored the demo's drifting stream and learned its labels, then stopped (final checkpoints)."""
    settings = Settings(
        broker_url=stack.broker_url,
        redis_url=stack.redis_url,
        topic_prefix=f"r{uuid.uuid4().hex[:8]}.",
        model_hmac_key=TEST_HMAC_KEY,
        metrics_port=0,
        http_port=0,
    )
    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    workdir = tmp_path_factory.mktemp("report")
    worker = WorkerProcess(settings, workdir).start()
    try:
        events, labels = demo_messages(None, None, N_EVENTS)
        pairs = list(interleave(events, labels, 500))
        asyncio.run(publish(settings, "events", [(message_key(raw), raw) for kind, raw in pairs if kind == "events"]))
        asyncio.run(publish(settings, "labels", [(MODEL.encode(), raw) for kind, raw in pairs if kind == "labels"]))
        out = asyncio.run(
            read_until(settings, ["predictions"], lambda s: len(set(prediction_ids(s["predictions"]))) >= N_EVENTS)
        )
        assert len(set(prediction_ids(out["predictions"]))) == N_EVENTS, worker.log()[-3000:]
        learned_key, learned, progressed = keys.learner(settings.redis_prefix, MODEL), 0, time.monotonic()
        while learned < N_EVENTS:  # every label learned and checkpointed; a slow machine only takes longer
            assert worker.alive(), worker.log()[-3000:]
            now = int(client.hget(learned_key, "learned") or 0)
            if now > learned:
                learned, progressed = now, time.monotonic()
            assert time.monotonic() - progressed < 120, f"no label learned for two minutes ({learned} of {N_EVENTS})"
            time.sleep(0.2)
    finally:
        worker.stop()
    blob = client.get(keys.monitor(settings.redis_prefix, MODEL, "scoring"))
    assert (
        Monitor.restore(blob, TEST_HMAC_KEY.encode(), purpose=keys.monitor_purpose(MODEL, "scoring")).events == N_EVENTS
    )
    client.close()
    yield settings, workdir


@pytest.fixture(scope="module")
def report(drifted: tuple[Settings, Path]) -> tuple[dict[str, Any], Path]:
    settings, workdir = drifted
    page = workdir / "report.html"
    done = run_report(settings, "--out", str(page), "--json")
    assert done.returncode == 0, done.stderr
    (workdir / "report.json").write_text(done.stdout)
    return json.loads(done.stdout), page


def test_the_report_puts_the_drifted_feature_first_with_both_distributions_and_its_alert(
    report: tuple[dict[str, Any], Path],
) -> None:
    data, page = report
    assert data["counts"]["events"] == N_EVENTS and data["counts"]["outcomes"] == N_EVENTS
    assert data["versions"]["served"] == data["versions"]["history"][-1] >= 1  # the learner's latest snapshot
    salary = data["features"][0]
    assert salary["name"] == "salary"
    salary_alerts = [
        a for a in data["alerts"] if a["kind"] in ("data_drift", "data_quality") and a["feature"] == "salary"
    ]
    assert {a["kind"] for a in salary_alerts} >= {"data_drift"}  # out-of-range data quality may come too
    assert set(salary["alerts"]) == {a["alert_id"] for a in salary_alerts}
    assert salary["tests"]["ks"]["p_value"] < data["counts"]["alpha"]
    reference, window = salary["distribution"]["reference"], salary["distribution"]["window"]
    assert len(reference) == len(window) > 2
    assert window[-1] > 2 * reference[-1], "the current window has not moved to the top salaries"
    assert sum(abs(w - r) for w, r in zip(window, reference, strict=True)) / 2 > 0.15  # total variation
    undrifted = next(f for f in data["features"] if f["name"] == "age")
    assert not undrifted["alerts"] and undrifted["tests"]["ks"]["p_value"] > data["counts"]["alpha"]
    history = salary["history"]
    marks = [events // 250 for events in history["events"]]  # each point past another hop of 250 events
    assert len(marks) >= 5 and marks == sorted(set(marks)) and history["events"][-1] == N_EVENTS
    p_values = [p for p in history["series"]["ks|p_value"] if p is not None]
    assert max(p_values) > 1e-3 and min(p_values) < 1e-10, "p-values over time do not show the drift"
    windows = data["performance"]["cbpe_windows"]  # estimated vs realised per window of labelled outcomes
    assert windows and all(w["realised"]["n"] == 1000 for w in windows)
    text = page.read_text()
    assert "id='feature-salary'" in text and salary_alerts[0]["event_id"] in text


def test_the_report_renders_in_headless_chromium_without_console_errors(
    report: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    if chromium() is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    data, page = report
    seen = check_page(page, tmp_path / "profile")
    assert seen.errors == [] and seen.broken_images == [], (seen.errors, seen.broken_images)
    assert seen.images >= len(data["features"]) + 3  # a plot per feature, alerts, prediction, performance
    assert seen.title == f"driftline live report: {MODEL}"
    assert seen.screenshot.startswith(b"\x89PNG") and len(seen.screenshot) > 50_000
    (page.parent / "report.png").write_bytes(seen.screenshot)

    broken = tmp_path / "broken.html"  # the check fails for the right reasons
    broken.write_text(
        "<html><body><img alt='plot' src='data:image/png;base64,AAAA'>"
        "<script>console.error('boom')</script></body></html>"
    )
    bad = check_page(broken, tmp_path / "profile2")
    assert bad.broken_images == ["plot"] and any("boom" in e for e in bad.errors)


def test_the_report_of_an_unknown_model_is_one_line_and_non_zero(drifted: tuple[Settings, Path]) -> None:
    settings, _ = drifted
    done = subprocess.run(
        [sys.executable, "-m", "driftline", "report", "--model", "nobody", "--json"],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and done.stderr.strip() == (
        f"Error: no model 'nobody' in {masked(settings.redis_url or '')}: nothing registered or monitored"
    )
