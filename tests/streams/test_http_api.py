"""The V2 inference API of a real worker process, called with curl (a client driftline did not write): the same
rows give the same predictions over HTTP as over Kafka, bad requests get a 400 with the dead letter's reason,
and rows with ``parameters.event_id`` join their labels and are learned like Kafka events."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
import time

import pytest
import redis

from driftline.contract import keys
from driftline.embedded.stack import free_port
from driftline.streams.join_store import find_join
from tests.harness import WorkerProcess, event, publish, read_until

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"


def curl(port: int, path: str, body: object | bytes | None = None, token: str | None = TOKEN) -> tuple[int, dict]:
    """Status and JSON body of one curl call to the worker."""
    command = [
        shutil.which("curl") or "curl",
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        f"http://127.0.0.1:{port}{path}",
    ]
    if token:
        command += ["-H", f"Authorization: Bearer {token}"]
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        command += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    result = subprocess.run(command, input=data if body is not None else None, capture_output=True, check=True)
    text, _, status = result.stdout.decode().rpartition("\n")
    return int(status), json.loads(text) if text else {}


def wait_ready(port: int, worker: WorkerProcess, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.alive(), worker.log()
        try:
            if curl(port, "/v2/health/ready", token=None)[0] == 200:
                return
        except subprocess.CalledProcessError:  # not listening yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"worker not ready on port {port}:\n{worker.log()}")


def columns(rows: list[dict], event_ids: list[str] | None = None) -> dict:
    """A V2 inference request: one FP64 tensor per feature, one element per row."""
    names = sorted({name for row in rows for name in row})
    request: dict = {
        "id": "req-1",
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": "FP64", "data": [row.get(n) for row in rows]} for n in names
        ],
    }
    if event_ids is not None:
        request["parameters"] = {"event_id": event_ids}
    return request


def by_row(answer: dict) -> list[dict]:
    """The response's outputs as one dict per row."""
    outputs = {o["name"]: o for o in answer["outputs"]}
    classes = outputs["probabilities"]["parameters"]["classes"]
    flat = outputs["probabilities"]["data"]
    return [
        {
            "event_id": outputs["event_id"]["data"][i],
            "prediction": outputs["prediction"]["data"][i],
            "probabilities": dict(zip(classes, flat[i * len(classes) : (i + 1) * len(classes)], strict=True)),
            "model_version": outputs["model_version"]["data"][i],
        }
        for i in range(outputs["prediction"]["shape"][0])
    ]


def test_http_and_kafka_give_the_same_predictions_and_bad_requests_get_400(settings, tmp_path):
    n = 300
    port = free_port()
    worker = WorkerProcess(settings, tmp_path, DRIFTLINE_HTTP_PORT=str(port), DRIFTLINE_HTTP_TOKEN=TOKEN).start()
    raw = [event(i, age=float(20 + i % 50), car=None if i % 7 == 0 else float(i % 20)) for i in range(n)]
    rows = [json.loads(r)["features"] for r in raw]
    try:
        wait_ready(port, worker)
        asyncio.run(publish(settings, "events", [(f"e{i}".encode(), r) for i, r in enumerate(raw)]))
        out = asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= n))
        kafka = {p["event_id"]: p for p in (json.loads(r.value) for r in out["predictions"])}

        status, batch = curl(port, "/v2/models/default/infer", columns(rows, [f"h{i}" for i in range(n)]))
        assert status == 200, batch
        assert batch["id"] == "req-1" and batch["model_name"] == "default" and batch["model_version"] == "1"
        singles = [curl(port, "/v2/models/default/infer", columns([rows[i]]))[1] for i in (0, 7, 123)]

        # the same rows, the same model version, the same predictions and probabilities on both paths
        for i, got in enumerate(by_row(batch)):
            want = kafka[f"e{i}"]
            assert got["event_id"] == f"h{i}"
            assert (got["prediction"], got["model_version"]) == (want["prediction"], want["model_version"])
            assert got["probabilities"] == pytest.approx(want["probabilities"], rel=1e-12)
        for i, single in zip((0, 7, 123), singles, strict=True):
            [got] = by_row(single)
            assert got["prediction"] == kafka[f"e{i}"]["prediction"]
            assert got["probabilities"] == pytest.approx(kafka[f"e{i}"]["probabilities"], rel=1e-12)

        # rows with parameters.event_id wait for their labels in Redis like Kafka events; others do not
        client = redis.Redis.from_url(settings.redis_url)
        now, ttl = int(time.time() * 1000), settings.label_ttl_seconds
        assert find_join(client, settings.redis_prefix, ttl, "default", "h5", now) is not None
        single_id = by_row(singles[0])[0]["event_id"]
        assert find_join(client, settings.redis_prefix, ttl, "default", single_id, now) is None
        labels = [json.dumps({"event_id": f"h{i}", "label": i % 2 == 0, "ts": now + i}) for i in range(n)]
        asyncio.run(publish(settings, "labels", [(b"default", label.encode()) for label in labels]))
        deadline = time.monotonic() + 60
        while int(client.hget(keys.learner(settings.redis_prefix, "default"), "learned") or 0) < n:
            assert time.monotonic() < deadline and worker.alive(), worker.log()
            time.sleep(0.1)

        # every prediction served over HTTP is also on the predictions topic
        served = {f"h{i}" for i in range(n)} | {by_row(s)[0]["event_id"] for s in singles}
        logged = asyncio.run(
            read_until(
                settings,
                ["predictions"],
                lambda seen: served <= {json.loads(r.value)["event_id"] for r in seen["predictions"]},
                timeout=30,
            )
        )
        assert served <= {json.loads(r.value)["event_id"] for r in logged["predictions"]}

        # health, metadata, auth
        assert curl(port, "/v2/health/live", token=None) == (200, {"live": True})
        assert curl(port, "/v2/models/default/ready")[0] == 200
        status, meta = curl(port, "/v2/models/default")
        assert status == 200 and meta["versions"] == ["1"]
        assert {i["name"]: i["datatype"] for i in meta["inputs"]}["salary"] == "FP64"
        assert curl(port, "/v2/models/default", token=None)[0] == 401
        assert curl(port, "/v2/models/default", token="wrong")[0] == 401
        assert curl(port, "/v2/models/default/versions/9/ready")[0] == 404

        # malformed requests: 400 with the reason a dead letter would carry, never a 500
        bad_type = columns([rows[0]])
        for tensor in bad_type["inputs"]:
            if tensor["name"] == "loan":
                tensor.update(datatype="BYTES", data=["lots"])
        status, error = curl(port, "/v2/models/default/infer", bad_type)
        assert status == 400 and error["error_class"] == "FeatureError"
        assert "feature 'loan' expects a number, got str" in error["error"]
        assert curl(port, "/v2/models/default/infer", b'{"inputs": [')[0] == 400
        short = columns(rows[:2])
        short["inputs"][0]["data"] = short["inputs"][0]["data"][:1]
        status, error = curl(port, "/v2/models/default/infer", short)
        assert status == 400 and "shape [2] but 1 elements" in error["error"]
        status, error = curl(port, "/v2/models/nope/infer", columns(rows[:1]))
        assert status == 404 and "no model named 'nope'" in error["error"]
        too_big = columns([{"salary": 1.0}])
        too_big["inputs"][0]["data"] = ["x" * 70_000]
        too_big["inputs"][0]["datatype"] = "BYTES"
        status, error = curl(port, "/v2/models/default/infer", too_big)
        assert status == 400 and error["error_class"] == "PayloadTooLarge"
    finally:
        worker.stop()
    assert "Traceback" not in worker.log()


def test_explanations_on_the_predictions_topic_and_over_http_are_the_model_s_logit(settings, tmp_path):
    """DRIFTLINE_EXPLAIN_TOP_K=3 adds an explanation to every Kafka prediction; ``parameters.explain`` asks for
    one over HTTP; both are the same contributions, and intercept + contributions + others is the score's logit."""
    n, port = 100, free_port()
    worker = WorkerProcess(
        settings, tmp_path, DRIFTLINE_HTTP_PORT=str(port), DRIFTLINE_HTTP_TOKEN=TOKEN, DRIFTLINE_EXPLAIN_TOP_K="3"
    ).start()
    raw = [event(i, age=float(20 + i % 50), car=None if i % 7 == 0 else float(i % 20)) for i in range(n)]
    try:
        wait_ready(port, worker)
        asyncio.run(publish(settings, "events", [(f"e{i}".encode(), r) for i, r in enumerate(raw)]))
        out = asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= n))
        kafka = {p["event_id"]: p for p in (json.loads(r.value) for r in out["predictions"])}
        request = columns([json.loads(r)["features"] for r in raw[:10]])
        request["parameters"] = {"explain": 3}
        status, answer = curl(port, "/v2/models/default/infer", request)
    finally:
        worker.stop()
    assert status == 200, answer
    for prediction in kafka.values():
        e = prediction["explanation"]
        assert e["method"] == "linear" and e["output"] == "logit" and len(e["contributions"]) == 3
        logit = e["intercept"] + sum(e["contributions"].values()) + e["others"]
        assert 1 / (1 + math.exp(-logit)) == pytest.approx(prediction["score"], rel=1e-9)
    assert "car" not in kafka["e7"]["explanation"]["contributions"]  # absent (imputed) features contribute 0
    over_http = next(o for o in answer["outputs"] if o["name"] == "explanation")["data"]
    for i, document in enumerate(over_http):
        got, want = json.loads(document), kafka[f"e{i}"]["explanation"]
        assert got["contributions"].keys() == want["contributions"].keys()
        assert list(got["contributions"].values()) == pytest.approx(list(want["contributions"].values()), rel=1e-12)


def test_concurrent_requests_batched_together_each_get_their_own_rows_and_a_bad_one_only_its_400(settings, tmp_path):
    """Hundreds of requests in flight at once are scored in shared batches (adaptive batching): each answer holds
    its own rows' predictions, the same as each request alone gets, and a bad request among them is the only 400."""
    import aiohttp

    port = free_port()
    worker = WorkerProcess(settings, tmp_path, DRIFTLINE_HTTP_PORT=str(port), DRIFTLINE_HTTP_TOKEN=TOKEN).start()
    rows = [json.loads(event(i, age=float(20 + i % 50)))["features"] for i in range(600)]
    requests = [rows[i : i + 1 + i % 3] for i in range(0, 600, 3)]  # 1 to 3 rows each
    bad = {17, 101, 150}
    url = f"http://127.0.0.1:{port}/v2/models/default/infer"
    headers = {"Authorization": f"Bearer {TOKEN}"}

    async def post_all(bodies: list[dict]) -> list[tuple[int, dict]]:
        async with aiohttp.ClientSession(headers=headers) as session:

            async def post(body: dict) -> tuple[int, dict]:
                async with session.post(url, json=body) as answer:
                    return answer.status, await answer.json()

            return await asyncio.gather(*(post(body) for body in bodies))

    try:
        wait_ready(port, worker)
        bodies = [columns(r) for r in requests]
        for i in bad:
            bodies[i]["inputs"][0]["data"][0] = "not a number"
            bodies[i]["inputs"][0]["datatype"] = "BYTES"
        together = asyncio.run(post_all(bodies))
        alone = [curl(port, "/v2/models/default/infer", columns(requests[i])) for i in (0, 1, 2, 99, 199)]
    finally:
        worker.stop()
    assert "Traceback" not in worker.log()
    assert {i for i, (status, _) in enumerate(together) if status != 200} == bad
    assert all(together[i][1]["error_class"] == "FeatureError" for i in bad)
    for i, (status, answer) in enumerate(together):
        if status == 200:
            assert len(by_row(answer)) == len(requests[i])
    for i, (status, answer) in zip((0, 1, 2, 99, 199), alone, strict=True):
        assert status == 200
        got, want = by_row(together[i][1]), by_row(answer)
        assert [r["prediction"] for r in got] == [r["prediction"] for r in want]
        for g, w in zip(got, want, strict=True):
            assert g["probabilities"] == pytest.approx(w["probabilities"], rel=1e-12)
