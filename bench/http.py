"""`driftline bench http`: the worker's V2 inference API against the in-process score of the same rows, in one run.

One worker process on the embedded stack serves ``POST /v2/models/default/infer``; an aiohttp client in this
process sends the same requests two ways:

* **at a fixed rate** (open loop: request *i* leaves at ``start + i / rate`` whatever the previous ones do, and its
  latency runs from that planned time, so a stalled server is not hidden by a waiting client): single-row requests
  at ``rate`` per second, then 100-row requests at ``batch_rate``; p50, p99 and max latency, the rate achieved,
  and the worker's CPU time per request;
* **as fast as possible** with ``concurrency`` requests in flight: requests/s.

The in-process side parses the same request bodies and scores them with the same model version through the
stream's stage (``parse_request`` + ``model_names`` + ``score_records``: what the worker runs per request minus
HTTP, monitors and publishing), timed per call. The client shares the machine with the worker (and, on a shared
machine, with everything else), so its own CPU is part of the latency.

>>> body = request_body([{"x": 1.0, "c": 2.0}, {"x": 3.0}])
>>> json.loads(body)["inputs"][0]
{'name': 'c', 'shape': [2], 'datatype': 'FP64', 'data': [2.0, None]}
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import aiohttp
import numpy as np

from driftline.bench.pipeline import cpu_seconds
from driftline.contract.settings import Settings
from driftline.embedded.demo import start_worker, worker_env
from driftline.embedded.stack import embedded_stack, free_port, stop_process
from driftline.models.bootstrap import synthetic_stream
from driftline.models.registry import ModelRegistry
from driftline.streams.connections import redis_client
from driftline.streams.inference_protocol import parse_request
from driftline.streams.scoring_stage import LoadedModel, ScoringPolicy, model_names, score_records

#: Rows per request of the batch phase.
BATCH_ROWS = 100
#: The goal the issue sets: p99 of single-row requests at 500 requests/s on one worker.
GOAL_P99_MS = 10.0


def request_body(rows: Sequence[dict[str, Any]]) -> bytes:
    """A V2 inference request: one FP64 tensor per feature, one element per row."""
    names = sorted({name for row in rows for name in row})
    inputs = [
        {"name": n, "shape": [len(rows)], "datatype": "FP64", "data": [row.get(n) for row in rows]} for n in names
    ]
    return json.dumps({"inputs": inputs}).encode()


def _percentiles(ms: Sequence[float]) -> dict[str, float]:
    values = np.asarray(ms, dtype=float)
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
        "max_ms": round(float(values.max()), 2),
    }


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> int:
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as answer:
        await answer.read()
        return answer.status


async def fixed_rate(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], rate: float, worker_pid: int
) -> dict[str, Any]:
    """Send ``bodies`` at ``rate`` per second (open loop); latency from each request's planned start."""
    latencies: list[float] = []
    errors: Counter[str] = Counter()

    async def one(body: bytes, planned: float) -> None:
        try:
            status = str(await _post(session, url, body))
        except aiohttp.ClientError as exc:
            status = type(exc).__name__
        if status != "200":
            errors[status] += 1
        latencies.append((time.perf_counter() - planned) * 1000)

    cpu_before = cpu_seconds(worker_pid)
    start = time.perf_counter()
    tasks = []
    for i, body in enumerate(bodies):
        planned = start + i / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(body, planned)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    cpu_after = cpu_seconds(worker_pid)
    cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / len(bodies) * 1e6
    return {
        "rate": rate,
        "requests": len(bodies),
        "achieved_rps": round(len(bodies) / elapsed, 1),
        "errors": dict(errors),
        **_percentiles(latencies),
        "worker_cpu_us_per_request": None if cpu is None else round(cpu, 1),
    }


async def max_rate(
    session: aiohttp.ClientSession, url: str, bodies: Sequence[bytes], concurrency: int
) -> tuple[float, int]:
    """Requests/s with ``concurrency`` requests in flight, and how many were not answered 200."""
    queue = iter(bodies)
    failed = 0

    async def client() -> None:
        nonlocal failed
        for body in queue:
            try:
                failed += await _post(session, url, body) != 200
            except aiohttp.ClientError:
                failed += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return len(bodies) / (time.perf_counter() - start), failed


def in_process(loaded: LoadedModel, bodies: Sequence[bytes], policy: ScoringPolicy) -> dict[str, Any]:
    """The same request bodies parsed and scored through the stage in this process, one call at a time."""
    latencies = []
    started = time.perf_counter()
    for body in bodies:
        begin = time.perf_counter()
        request = parse_request(body, loaded.name, now_ms=int(time.time() * 1000))
        _, parsed = model_names(request.records, policy)
        batch = score_records(request.records, parsed, lambda n: loaded if n == loaded.name else None, policy)
        assert not batch.dead_letters, batch.dead_letters[:1]
        latencies.append((time.perf_counter() - begin) * 1000)
    return {"rps": round(len(bodies) / (time.perf_counter() - started), 1), **_percentiles(latencies)}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No garbage collection in this process (the client) while it measures: a full collection over its request
    bodies, rows, modules and pending requests held it 30-230 ms of CPU (measured with gc.callbacks), counted as
    the server's latency of every request in flight. A run's garbage is a few megabytes."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _wait_ready(session: aiohttp.ClientSession, base: str, worker: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode} before its V2 API was ready")
        try:
            async with session.get(f"{base}/v2/health/ready") as answer:
                if answer.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"the worker's V2 API was not ready within {timeout:g} s")


async def _measure(
    base: str, worker: Any, singles: list[bytes], batches: list[bytes], rate: float, batch_rate: float, concurrency: int
) -> dict[str, Any]:
    url = f"{base}/v2/models/default/infer"
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _wait_ready(session, base, worker)
        await max_rate(session, url, singles[:500], concurrency)  # warm-up: connections, model, code paths
        single = await fixed_rate(session, url, singles, rate, worker.pid)
        batch = await fixed_rate(session, url, batches, batch_rate, worker.pid)
        for figures, bodies in ((single, singles), (batch, batches)):
            rps, failed = await max_rate(session, url, bodies, concurrency)
            figures["max_rps"], figures["max_rps_errors"] = round(rps, 1), failed
    return {"single": single, "batch": batch}


def run(rate: float = 500.0, batch_rate: float = 50.0, seconds: float = 10.0, concurrency: int = 8) -> dict[str, Any]:
    """Both sides of the comparison in one run; the JSON figures."""
    n_single, n_batch = int(rate * seconds), int(batch_rate * seconds)
    rows = [e["features"] for e, _ in synthetic_stream(max(n_single, n_batch * BATCH_ROWS), drift_at=10**9)]
    singles = [request_body([row]) for row in rows[:n_single]]
    batches = [request_body(rows[i * BATCH_ROWS : (i + 1) * BATCH_ROWS]) for i in range(n_batch)]
    settings = Settings(topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
    key = secrets.token_hex(16)
    with embedded_stack(key_prefix=settings.redis_prefix) as stack:
        http_port = free_port()
        env = worker_env(settings, stack, key, free_port(), http_port)
        worker = start_worker(env, stack.workdir / "worker.log")
        try:
            with collector_paused():
                served = asyncio.run(
                    _measure(f"http://127.0.0.1:{http_port}", worker, singles, batches, rate, batch_rate, concurrency)
                )
        finally:
            died = worker.poll()
            stop_process(worker)
            log = (stack.workdir / "worker.log").read_text(errors="replace")
        if died is not None or "Traceback" in log:
            raise RuntimeError(f"the worker failed (exit {died}): {log[log.find('Traceback') :][-2000:]}")
        registry = ModelRegistry(redis_client(settings, stack.redis_url), key.encode(), settings.redis_prefix)
        loaded = LoadedModel(*registry.load("default"))
    policy = ScoringPolicy(default_model="default")
    in_process(loaded, singles[:500], policy)  # warm-up
    served["single"]["in_process"] = in_process(loaded, singles, policy)
    served["batch"]["in_process"] = in_process(loaded, batches, policy)
    return {
        "bench": "http",
        "rows_per_batch_request": BATCH_ROWS,
        "seconds_per_phase": seconds,
        "concurrency": concurrency,
        **served,
        "goal": {
            "p99_ms": GOAL_P99_MS,
            "rate": 500.0,
            "met": rate >= 500 and served["single"]["p99_ms"] <= GOAL_P99_MS,
        },
    }
