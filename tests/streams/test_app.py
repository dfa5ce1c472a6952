"""The worker's Faust application keeps its data directory under the state folder, never the current one; a started
worker keeps what it loaded out of the garbage collector's full collections; a monitor that raises stops neither
scoring nor learning; a worker joins no consumer group it does not read from."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftline.contract import keys
from driftline.contract.settings import Settings
from driftline.embedded.stack import free_port, stop_process
from driftline.streams.app import Worker
from tests.harness import event, prediction_ids, probe, publish, read_until, settings_env
from tests.streams.test_poison_defects import label


def test_faust_data_directory_is_under_the_state_folder_not_the_current_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DRIFTLINE_STATE_DIR", str(tmp_path / "user" / "state"))
    settings = Settings(metrics_port=0, http_port=0, model_hmac_key="k")
    worker = Worker(settings, "127.0.0.1:1", "redis://127.0.0.1:1/0")
    app = worker.create_app()
    assert Path(app.conf.datadir) == tmp_path / "user" / "state" / "driftline.worker-data"
    assert Path(app.conf.appdir).is_relative_to(tmp_path / "user" / "state")
    assert (tmp_path / "user" / "state").is_dir()  # Faust makes only the last level of its folders
    assert list(tmp_path.iterdir()) == [tmp_path / "user"]


def test_default_state_folder_is_the_users_not_the_current_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRIFTLINE_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert Settings().state_dir == tmp_path / "xdg" / "driftline"
    monkeypatch.delenv("XDG_STATE_HOME")
    if sys.platform.startswith("linux"):
        assert Settings().state_dir == Path.home() / ".local" / "state" / "driftline"


@pytest.mark.integration
def test_a_started_worker_keeps_what_it_loaded_out_of_the_collector_s_full_collections(settings, stack):
    """Modules, the served model and the clients live as long as the worker: frozen once it started, a full
    collection no longer scans them (each scan held the event loop 115-150 ms: the HTTP API's p99)."""
    worker = Worker(settings, stack.broker_url, stack.redis_url)

    async def start_and_stop() -> tuple[int, bool]:
        await worker.start()
        try:
            model = worker.models.get(settings.model_name)
            collected = model is not None and any(o is model.model for o in gc.get_objects(generation=2))
            return gc.get_freeze_count(), collected
        finally:
            await worker.stop()

    assert gc.get_freeze_count() == 0
    try:
        frozen, model_still_scanned = asyncio.run(start_and_stop())
    finally:
        gc.unfreeze()
    assert frozen > 0 and not model_still_scanned


@pytest.mark.integration
def test_the_monitor_feed_s_idle_polls_checkpoint_nothing_its_revokes_and_stops_do(settings, stack, redis_client):
    """The feed runs dry between the scorer's batches, up to 20 times a second: a checkpoint of every monitor on
    each idle poll cost ~9% of the worker's CPU. The worker's timer checkpoints instead; a revoke or a stop
    (``on_flush``) still does, at once."""
    worker = Worker(settings, stack.broker_url, stack.redis_url)
    key = keys.monitor(settings.redis_prefix, settings.model_name, "scoring")

    async def idle_then_flush() -> tuple[bool, bool]:
        await worker.start()
        try:
            await worker.models.ensure({settings.model_name})
            await worker.scoring_watch.ensure([worker.models.get(settings.model_name).meta])
            feed = next(source for source in worker.sources() if source.source_name == "monitor")
            assert feed.on_idle is not None  # what an idle poll calls instead of awaiting on_flush
            worker.monitoring.unsaved = True  # what a handled batch sets
            feed.on_idle()
            after_idle = redis_client.exists(key) == 1
            await feed.flush()  # a revoke or a stop
            return after_idle, redis_client.exists(key) == 1
        finally:
            await worker.stop()
            gc.unfreeze()

    assert asyncio.run(idle_then_flush()) == (False, True)


#: A worker whose monitors raise on any batch holding event ``e30`` (scoring) or its label (learning): a bug in a
#: detector must cost monitoring, never the batch's predictions or its labels.
FAULTY_MONITOR_WORKER = """
from driftline.monitoring.monitor import Monitor

events, outcomes = Monitor.observe_events, Monitor.observe_outcomes


def observe_events(self, event_ids, *args, **kwargs):
    if "e30" in event_ids:
        raise RuntimeError("injected scoring monitor fault")
    return events(self, event_ids, *args, **kwargs)


def observe_outcomes(self, event_ids, *args, **kwargs):
    if "e30" in event_ids:
        raise RuntimeError("injected learning monitor fault")
    return outcomes(self, event_ids, *args, **kwargs)


Monitor.observe_events, Monitor.observe_outcomes = observe_events, observe_outcomes
from driftline.cli import main

main(["worker"])
"""


def step_failures(port: int) -> dict[str, float]:
    """``driftline_step_failures_total`` by step, from a worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        s.labels["step"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "driftline_step_failures_total"
    }


@pytest.mark.integration
def test_a_monitor_raising_on_a_batch_stops_neither_scoring_nor_learning_and_is_counted(
    settings, redis_client, tmp_path
) -> None:
    """The batch with the poison event is scored (its predictions published) and later batches too; its labels
    are learned; each failure is counted as a step failure and logged, and the worker stays healthy. Without the
    guards the scoring service crashed (the worker exits) and the labels were dead-lettered as unexpected."""
    port = free_port()
    log_path = tmp_path / "worker.log"
    env = settings_env(settings, DRIFTLINE_METRICS_PORT=str(port))
    n = 100
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", FAULTY_MONITOR_WORKER],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            asyncio.run(publish(settings, "events", [(b"k", event(i)) for i in range(n // 2)]))
            asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= n // 2))
            asyncio.run(publish(settings, "events", [(b"k", event(i)) for i in range(n // 2, n)]))  # after it
            out = asyncio.run(
                read_until(settings, ["predictions"], lambda seen: len(set(prediction_ids(seen["predictions"]))) >= n)
            )
            labels = [(b"default", label(f"e{i}")) for i in range(n)]
            asyncio.run(publish(settings, "labels", labels))
            key = keys.learner(settings.redis_prefix, settings.model_name)
            deadline = time.monotonic() + 120
            while int(redis_client.hget(key, "learned") or 0) < n:
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            failures, health = step_failures(port), probe(port, "/healthz")
        finally:
            stop_process(proc)
    output = log_path.read_text()
    assert set(prediction_ids(out["predictions"])) == {f"e{i}" for i in range(n)}
    assert failures.get("scoring monitors", 0) >= 1 and failures.get("monitor outcomes", 0) >= 1, failures
    assert health is not None and health[0] == 200, health
    assert "injected scoring monitor fault" in output and "injected learning monitor fault" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("webhook_url", [None, "http://127.0.0.1:1/alerts"])
def test_faust_starts_a_kafka_consumer_only_for_the_webhook_agent(webhook_url: str | None) -> None:
    """The batch sources have consumers of their own; Faust's would form a group of its own at every start (~5 s
    on the embedded broker) though no Faust agent reads anything. Only the webhook's agent needs it."""
    settings = Settings(metrics_port=0, http_port=0, model_hmac_key="k", webhook_url=webhook_url)
    app = Worker(settings, "127.0.0.1:1", "redis://127.0.0.1:1/0").create_app()
    started = list(app.on_init_dependencies())
    assert (app.consumer in started) == (webhook_url is not None)
