"""Prometheus metrics of the streaming path (scoring, dead letters, batches, lag, model versions), served with the
worker's probes (``/healthz``, ``/readyz``) on the metrics port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
import orjson
from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

from driftline.streams.health import Health

EVENTS_SCORED = Counter("driftline_events_scored_total", "Events scored", ["model"])
DEAD_LETTERED = Counter(
    "driftline_dead_lettered_total", "Messages sent to the dead-letter topic", ["source", "stage", "reason"]
)
SCORING_LATENCY = Histogram(
    "driftline_scoring_latency_seconds",
    "Event produced -> prediction published",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "driftline_batch_size", "Messages per processed batch", ["stage"], buckets=(1, 10, 50, 100, 250, 500, 1000, 2000)
)
CONSUMER_LAG = Gauge("driftline_consumer_lag", "Messages behind the end of the partition", ["topic", "partition"])
MODEL_VERSION = Gauge("driftline_model_version", "Model version in use", ["model", "role"])
MODEL_RELOADS = Counter("driftline_model_reloads_total", "Hot reloads of a model version", ["model"])
MODEL_INTEGRITY_FAILURES = Counter(
    "driftline_model_integrity_failures_total", "Model blobs refused by verification", ["model"]
)
LEARNER_METRIC = Gauge("driftline_prequential_metric", "Prequential metric of the online learner", ["model", "metric"])
LABELS_LEARNED = Counter("driftline_labels_learned_total", "Labels joined and learned", ["model"])
LEARNED_IDS = Gauge("driftline_learned_ids", "Learned label ids remembered for exactly-once", ["model"])
LEARNED_IDS_FORGOTTEN_EARLY = Counter(
    "driftline_learned_ids_forgotten_early_total",
    "Learned label ids forgotten before the exactly-once window ended (max_learned_ids reached)",
    ["model"],
)
STEP_FAILURES = Counter(
    "driftline_step_failures_total",
    "Steps beside scoring and learning (monitors, shadow challenger) that raised unexpectedly; the messages keep "
    "their predictions and stay learned",
    ["model", "step"],
)
CHALLENGER_SCORED = Counter("driftline_challenger_scored_total", "Events scored in shadow by a challenger", ["model"])
REVIEW_REQUESTS = Counter("driftline_review_requests_total", "Low-confidence predictions sent to review", ["model"])
JOIN_BUFFERED = Gauge("driftline_join_buffered", "Join records waiting for Redis (the scorer pauses when full)")
CONSUMPTION_PAUSED = Gauge(
    "driftline_consumption_paused", "1 while a source has paused consumption (back-pressure)", ["stage"]
)
MONITOR_FEED = Gauge(
    "driftline_monitor_feed_events",
    "Events of a model's monitor feed in this worker since its monitor's checkpoint began: buffered (waiting for "
    "the watermark), out_of_order (monitored after a later event), forced (released by the cap before the "
    "watermark), duplicates (dropped by source offset)",
    ["model", "state"],
)
REDIS_ERRORS = Counter("driftline_redis_errors_total", "Redis operations that failed and were retried", ["op"])

HTTP_REQUESTS = Counter("driftline_http_requests_total", "V2 API requests by route and status", ["route", "status"])
HTTP_LATENCY = Histogram(
    "driftline_http_request_seconds",
    "V2 API request -> response",
    ["route"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
HTTP_REJECTED_ROWS = Counter(
    "driftline_http_rejected_rows_total", "Rows of V2 inference requests answered 400", ["stage", "reason"]
)
HTTP_PUBLISH_FAILURES = Counter(
    "driftline_http_publish_failures_total", "Answered HTTP rows whose prediction Kafka refused or did not acknowledge"
)


#: Counters with a ``model`` label, created at 0 for each model a worker serves (see :func:`init_model_counters`).
PER_MODEL_COUNTERS = (
    EVENTS_SCORED,
    MODEL_RELOADS,
    MODEL_INTEGRITY_FAILURES,
    LABELS_LEARNED,
    LEARNED_IDS_FORGOTTEN_EARLY,
    CHALLENGER_SCORED,
    REVIEW_REQUESTS,
)


def init_model_counters(model: str) -> None:
    """Create every per-model counter of ``model`` at 0: a rate panel shows 0 instead of "No data" until the
    first increment, and ``increase()`` counts that first increment."""
    for counter in PER_MODEL_COUNTERS:
        counter.labels(model)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Probes every few seconds would flood the log."""


def probes_app(health: Health, metrics: Callable | None = None) -> Callable:
    """A WSGI app answering ``/healthz`` and ``/readyz`` from ``health`` (200 or 503, JSON saying why), and
    everything else with ``metrics`` (Prometheus' exposition by default)."""
    metrics = metrics or make_wsgi_app()
    probes = {"/healthz": health.liveness, "/readyz": health.readiness}

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        probe = probes.get(environ.get("PATH_INFO", ""))
        if probe is None:
            return metrics(environ, start_response)
        ok, body = probe()
        start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
        return [orjson.dumps(body)]

    return app


def serve_metrics(host: str, port: int, health: Health) -> None:
    """Serve /metrics, /healthz and /readyz on ``host:port`` from a daemon thread (bind the configured address,
    never every interface by default): the probes answer even while the event loop is busy."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]  # an IPv6 address works too
    server_class = type("Server", (_Server,), {"address_family": family})
    server = make_server(host, port, probes_app(health), server_class, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


def observe_many(histogram: Histogram, amounts: Iterable[float]) -> None:
    """``histogram.observe(amount)`` for every amount, as one increment per bucket and one of the sum (one call
    per event cost ~1 µs of the scorer's time). Same bucket rule as ``observe``: the first bound >= the amount.

    >>> h = Histogram("doc_observe_many", "example", buckets=(1, 5), registry=None)
    >>> observe_many(h, [0.5, 1.0, 3.0, 9.0])
    >>> [(s.labels.get("le"), s.value) for s in h.collect()[0].samples if s.name.endswith(("_bucket", "_sum"))]
    [('1.0', 2.0), ('5.0', 3.0), ('+Inf', 4.0), (None, 13.5)]
    """
    values = np.fromiter(amounts, dtype=np.float64)
    if not len(values):
        return
    bounds = histogram._upper_bounds  # private: prometheus_client has no bulk observe
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    histogram._sum.inc(float(values.sum()))
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)
