"""Versioned hot reload on a running worker: a new version is picked up without restart, a tampered one is
refused (last good version kept, ``model_integrity`` alert raised, delivered to the webhook, rolled back)."""

from __future__ import annotations

import asyncio
import functools
import json
import pickle
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from driftline.contract import keys
from driftline.models.bootstrap import bootstrap_model
from driftline.models.registry import ModelRegistry
from tests.harness import WorkerProcess, event, publish, read_until

pytestmark = pytest.mark.integration


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A real HTTP receiver on 127.0.0.1 that records the JSON bodies POSTed to it."""
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", received
    server.shutdown()
    thread.join()


def versions_seen(settings, start: int, n: int) -> dict[str, int]:
    """Publish events start..start+n and return the model version stamped on each prediction."""
    asyncio.run(publish(settings, "events", ((None, event(i)) for i in range(start, start + n))))
    wanted = {f"e{i}" for i in range(start, start + n)}

    def done(seen: dict) -> bool:
        return wanted <= {json.loads(r.value)["event_id"] for r in seen["predictions"]}

    out = asyncio.run(read_until(settings, ["predictions"], done))
    return {
        p["event_id"]: p["model_version"]
        for p in map(lambda r: json.loads(r.value), out["predictions"])
        if p["event_id"] in wanted
    }


#: Probes of 20 events at most while waiting for the worker's reload check (0.2 s apart) to act.
PROBES = 100


def has_integrity_alert(seen: dict) -> bool:
    return any(json.loads(r.value)["kind"] == "model_integrity" for r in seen["alerts"])


def test_new_version_is_hot_reloaded_and_a_tampered_one_is_refused_alerted_and_rolled_back(
    settings, redis_client, tmp_path, webhook
):
    url, received = webhook
    settings = settings.model_copy(update={"webhook_url": url, "reload_check_seconds": 0.2})
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    model, schema, task = bootstrap_model(samples=500)
    registry.register(settings.model_name, model, schema=schema, task=task)
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        assert set(versions_seen(settings, 0, 200).values()) == {1}

        registry.register(settings.model_name, model, schema=schema, task=task, parent=1)
        start = 200
        for _ in range(PROBES):  # probes of 20 events until one is scored by v2 alone: the reload check ran
            seen, start = set(versions_seen(settings, start, 20).values()), start + 20
            assert seen <= {1, 2}
            if seen == {2}:
                break
        assert set(versions_seen(settings, start, 200).values()) == {2}, "v2 served without a restart"
        start += 200

        registry.register(settings.model_name, model, schema=schema, task=task, parent=2)
        blob_key = keys.model(settings.redis_prefix, settings.model_name, "blob:3")
        redis_client.set(blob_key, pickle.dumps({"not": "the signed model"}))
        integrity: list[dict] = []
        for _ in range(PROBES):  # the refusal's alert goes out with a later batch: probe until it is there
            assert set(versions_seen(settings, start, 20).values()) == {2}, "the tampered v3 is never served"
            start += 20
            alerts = asyncio.run(read_until(settings, ["alerts"], has_integrity_alert, timeout=1.0))["alerts"]
            integrity = [json.loads(r.value) for r in alerts if json.loads(r.value)["kind"] == "model_integrity"]
            if integrity:
                break
        assert set(versions_seen(settings, start, 200).values()) == {2}, "the last good version is kept"
        assert integrity and integrity[0]["model_version"] == 3 and integrity[0]["severity"] == "critical"
        assert integrity[0]["action"] == "rolled back to v2", "the configured action for integrity is rollback"
        assert registry.current_version(settings.model_name) == 2
        for _ in range(50):
            if any(a["kind"] == "model_integrity" for a in received):
                break
            asyncio.run(asyncio.sleep(0.2))
        assert any(a["alert_id"] == integrity[0]["alert_id"] for a in received), "delivered to the webhook"
        assert worker.alive() and worker.starts == 1
    finally:
        worker.stop()


class TouchOnUnpickle:
    """An object whose unpickling creates a file: proof of whether the worker ran the pickle."""

    def __init__(self, path):  # type: ignore[no-untyped-def]
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


def integrity_alerts(settings, n: int, start: int) -> tuple[list[dict], dict[str, int]]:
    """Publish events from ``start`` in small batches until ``n`` model_integrity alerts are out (a worker sends
    its alerts with the next batch it scores); the alerts and the version that served each event."""
    served: dict[str, int] = {}

    def done(seen: dict) -> bool:
        return sum(json.loads(r.value)["kind"] == "model_integrity" for r in seen["alerts"]) >= n

    for batch in range(60):
        served |= versions_seen(settings, start + 20 * batch, 20)
        out = asyncio.run(read_until(settings, ["alerts"], done, timeout=2))["alerts"]
        if done({"alerts": out}):
            return [a for a in map(lambda r: json.loads(r.value), out) if a["kind"] == "model_integrity"], served
    raise AssertionError(f"fewer than {n} integrity alerts after {len(served)} events")


def test_a_pickle_signed_with_the_old_public_key_and_a_version_with_a_cut_schema_are_refused(
    settings, redis_client, tmp_path
):
    """Issue 14, attacks 1 and 2 on a running worker. (1) A pickle registered and promoted with the key that used
    to be public (EMBEDDED_DEV_HMAC_KEY) never runs: refused, alerted, rolled back to v1. (2) v1's signed blob
    copied under version 3 with its schema cut to one feature and made current: refused (its metadata
    signature covers the version number and schema), alerted, rolled back; v1 serves every event throughout."""
    settings = settings.model_copy(update={"reload_check_seconds": 0.2})
    registry = ModelRegistry(redis_client, settings.keyring(), prefix=settings.redis_prefix)
    model, schema, task = bootstrap_model(samples=500)
    v1 = registry.register(settings.model_name, model, schema=schema, task=task)
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        assert set(versions_seen(settings, 0, 100).values()) == {1}
        marker = tmp_path / "code-ran"
        public = ModelRegistry(redis_client, b"driftline-embedded-dev-key-not-for-production", settings.redis_prefix)
        # no parent: a registry without the key cannot verify v1, so it cannot inherit from it
        forged = public.register(settings.model_name, TouchOnUnpickle(marker), schema=schema, task=task)
        assert forged.version == 2  # registered as current: the worker may refuse it before this line runs
        first, served = integrity_alerts(settings, 1, 100)
        assert [(a["model_version"], a["action"]) for a in first] == [(2, "rolled back to v1")]
        assert "not in the keyring" in first[0]["message"]
        assert not marker.exists(), "the forged pickle never ran in the worker"
        assert registry.current_version(settings.model_name) == 1

        key = functools.partial(keys.model, settings.redis_prefix, settings.model_name)
        redis_client.set(key("blob:3"), redis_client.get(key("blob:1")))
        cut = replace(v1, version=3, parent=1, schema=dict(list(v1.schema.items())[:1]))
        redis_client.hset(key("versions"), "3", cut.to_json())
        redis_client.rpush(key("history"), 3)
        redis_client.set(key("current"), 3)
        second, served_after = integrity_alerts(settings, 2, 2000)
        assert [(a["model_version"], a["action"]) for a in second] == [
            (2, "rolled back to v1"),
            (3, "rolled back to v1"),
        ]
        assert "metadata model-version signature does not match" in second[1]["message"]
        assert set(served.values()) == set(served_after.values()) == {1}, "v1 served every event, never a forgery"
        assert registry.current_version(settings.model_name) == 1 and worker.alive()
    finally:
        worker.stop()
