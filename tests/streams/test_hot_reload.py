"""Versioned hot reload on a running worker: a new version is picked up without restart, a tampered one is
refused (last good version kept, ``model_integrity`` alert raised, delivered to the webhook, rolled back)."""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

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


def test_new_version_is_hot_reloaded_and_a_tampered_one_is_refused_alerted_and_rolled_back(
    settings, redis_client, tmp_path, webhook
):
    url, received = webhook
    settings = settings.model_copy(update={"webhook_url": url, "reload_check_seconds": 0.2})
    registry = ModelRegistry(redis_client, settings.hmac_key(), prefix=settings.redis_prefix)
    model, schema, task = bootstrap_model(samples=500)
    registry.register(settings.model_name, model, schema=schema, task=task)
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        assert set(versions_seen(settings, 0, 200).values()) == {1}

        registry.register(settings.model_name, model, schema=schema, task=task, parent=1)
        asyncio.run(asyncio.sleep(1.5))  # several reload checks
        assert set(versions_seen(settings, 200, 200).values()) == {2}, "v2 served without a restart"

        registry.register(settings.model_name, model, schema=schema, task=task, parent=2)
        blob_key = f"{settings.redis_prefix}model:{settings.model_name}:blob:3"
        redis_client.set(blob_key, pickle.dumps({"not": "the signed model"}))
        asyncio.run(asyncio.sleep(1.5))
        assert set(versions_seen(settings, 400, 200).values()) == {2}, "the last good version is kept"

        alerts = asyncio.run(read_until(settings, ["alerts"], lambda seen: len(seen["alerts"]) >= 1))["alerts"]
        integrity = [json.loads(r.value) for r in alerts if json.loads(r.value)["kind"] == "model_integrity"]
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
