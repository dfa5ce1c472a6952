"""The worker's real-time HTTP API: the Open Inference Protocol V2 (KServe, MLServer, Triton) on aiohttp.

========================================  ==========================================================================
``GET  /v2``                              server metadata
``GET  /v2/health/live``                  200 while the worker runs
``GET  /v2/health/ready``                 200 once the default model is served, else 503
``GET  /v2/models/NAME[/versions/V]``     model metadata: inputs (one per feature) with datatypes, served version
``GET  /v2/models/NAME[/versions/V]/ready``  200 when that model (version) is served
``POST /v2/models/NAME[/versions/V]/infer``  predictions, probabilities, score, confidence, model version
========================================  ==========================================================================

Requests go through the stream's own path (:meth:`driftline.streams.app.Worker.score_batch`, ``put_joins`` and
``emit``): same validation, preparation, served version, decision threshold, monitors, join records (rows with
``parameters.event_id``) and ``predictions`` topic. A row the stream would dead-letter makes the request a 400
whose ``error`` is the dead letter's reason (nothing of that request is scored or published); a model that is not
served is a 404. Requests that arrive while an earlier one of the same model is being scored wait and are scored
together, one stage call for all (adaptive batching, as MLServer does); a batch with a bad row is scored again
request by request, so only the bad request gets its 400. A request is answered once it is scored and its join
records are written; its monitors and predictions follow within milliseconds, together with every request
answered meanwhile (:mod:`driftline.streams.answered`): while too many answered rows wait for them, new requests
wait too, and for a second after Kafka refused predictions new requests get a 503 with ``Retry-After``. With
``DRIFTLINE_HTTP_TOKEN`` set, every route but ``/v2/health/*`` needs
``Authorization: Bearer TOKEN``.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from importlib.metadata import version as package_version
from typing import Any, Protocol

import orjson
from aiohttp import web

from driftline.contract.records import MODEL_NAME_PATTERN, now_ms
from driftline.contract.settings import Settings
from driftline.models.explain import explain_rows
from driftline.streams.answered import AnsweredBatches, rows_of
from driftline.streams.inference_protocol import (
    HttpRecord,
    InferenceRequest,
    ProtocolError,
    model_metadata,
    parse_request,
    response,
)
from driftline.streams.metrics import HTTP_LATENCY, HTTP_PUBLISH_FAILURES, HTTP_REJECTED_ROWS, HTTP_REQUESTS
from driftline.streams.publisher import Publisher
from driftline.streams.scoring_stage import LoadedModel, RawRecord, ScoredBatch

log = logging.getLogger(__name__)

#: Largest request body (a 10,000-row request of a few dozen features fits).
MAX_BODY_BYTES = 16 * 1024 * 1024
#: Rows scored together at most when concurrent requests are batched.
MAX_BATCH_ROWS = 2_000
#: Routes a probe may call without the bearer token.
OPEN_ROUTES = ("/v2/health/live", "/v2/health/ready")


class Scorer(Protocol):
    """What the API needs of a worker (:class:`driftline.streams.app.Worker`)."""

    publisher: Publisher

    @property
    def models(self) -> ModelSource: ...

    async def score_batch(self, records: Sequence[RawRecord]) -> ScoredBatch: ...

    async def put_joins(self, batch: ScoredBatch) -> None: ...

    async def emit(self, batch: ScoredBatch, publisher: Publisher, join: bool = True) -> None: ...


class ModelSource(Protocol):
    """The served models (:class:`driftline.streams.model_cache.ModelCache`)."""

    def get(self, name: str) -> LoadedModel | None: ...

    async def ensure(self, names: set[str], retry_unknown_after: float = 1.0) -> None: ...


class BindError(OSError):
    """The API's address cannot be listened on (the message says which and why)."""


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; raises :class:`BindError` when it cannot be bound."""
    try:
        return socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        raise BindError(f"cannot serve the V2 HTTP API on {host}:{port}: {exc.strerror or exc}") from None


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return _json({"error": message, **extra}, status)


class InferenceApi:
    """The V2 routes of one worker, served from a socket bound beforehand (:func:`listen`)."""

    def __init__(self, worker: Scorer, settings: Settings):
        self.worker = worker
        self.settings = settings
        #: Its own publisher: the stream's waits for its own records' acknowledgements before committing offsets.
        self.publisher = Publisher(worker.publisher.producer, per_record=True)
        token = settings.http_token.get_secret_value() if settings.http_token is not None else None
        self.expected_auth = f"Bearer {token}".encode() if token else None
        self._runner: web.AppRunner | None = None
        #: Requests waiting to be scored, and the task scoring them, per (model, joinable).
        self._waiting: dict[tuple[str, bool], list[tuple[InferenceRequest, asyncio.Future[web.Response]]]] = {}
        self._drainers: dict[tuple[str, bool], asyncio.Task[None]] = {}
        #: Answered requests' batches on their way to the monitors and Kafka.
        self.answered = AnsweredBatches(self._emit_answered, _count_emit_failure)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._middleware])
        model = "/v2/models/{name}"
        versioned = "/v2/models/{name}/versions/{version}"
        app.router.add_get("/v2", self.server_metadata)
        app.router.add_get("/v2/health/live", self.live)
        app.router.add_get("/v2/health/ready", self.ready)
        for prefix in (model, versioned):
            app.router.add_get(prefix, self.metadata)
            app.router.add_get(prefix + "/ready", self.model_ready)
            app.router.add_post(prefix + "/infer", self.infer)
        return app

    async def start(self, sock: socket.socket) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        host, port = sock.getsockname()[:2]
        log.info("V2 inference API on http://%s:%s/v2", host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.answered.close()

    # --- middleware ----------------------------------------------------------------------------
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        info = request.match_info
        route = info.route.resource.canonical if info.route.resource is not None else "unmatched"
        if self.expected_auth is not None and request.path not in OPEN_ROUTES:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, self.expected_auth):
                answer: web.StreamResponse = _error(401, "missing or wrong bearer token")
                answer.headers["WWW-Authenticate"] = "Bearer"
                return self._count(route, answer, started)
        try:
            answer = await handler(request)
        except web.HTTPException as exc:  # aiohttp's own 404/405/413: the protocol's error body
            answer = _error(exc.status, exc.reason if exc.status != 413 else exc.text or exc.reason)
        except Exception:  # noqa: BLE001 - a failure of ours is a 500 with a line in the log, never a dead worker
            log.exception("V2 API %s %s failed", request.method, request.path)
            answer = _error(500, "internal error; see the worker's log")
        return self._count(route, answer, started)

    @staticmethod
    def _count(route: str, answer: web.StreamResponse, started: float) -> web.StreamResponse:
        HTTP_REQUESTS.labels(route, str(answer.status)).inc()
        HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
        return answer

    # --- health and metadata -------------------------------------------------------------------
    async def server_metadata(self, request: web.Request) -> web.Response:
        return _json({"name": "driftline", "version": package_version("driftline"), "extensions": []})

    async def live(self, request: web.Request) -> web.Response:
        return _json({"live": True})

    async def ready(self, request: web.Request) -> web.Response:
        ready = await self._served(self.settings.model_name) is not None
        return _json({"ready": ready}, 200 if ready else 503)

    async def _served(self, name: str) -> LoadedModel | None:
        """The served version of ``name`` (loaded on first use, like the stream does), or None."""
        if not MODEL_NAME_PATTERN.match(name):
            return None
        loaded = self.worker.models.get(name)
        if loaded is None:
            await self.worker.models.ensure({name})
            loaded = self.worker.models.get(name)
        return loaded

    async def _model(self, request: web.Request) -> LoadedModel | web.Response:
        """The model a request names, or the 404 to answer with."""
        name = request.match_info["name"]
        loaded = await self._served(name)
        if loaded is None:
            return _error(404, f"validate: UnknownModel: no model named '{name}'")
        asked = request.match_info.get("version")
        if asked is not None and asked != str(loaded.version):
            return _error(404, f"model '{name}' version {asked} is not served (serving version {loaded.version})")
        return loaded

    async def metadata(self, request: web.Request) -> web.Response:
        loaded = await self._model(request)
        if isinstance(loaded, web.Response):
            return loaded
        platform = "river" if type(loaded.model).__module__.startswith("river") else "sklearn"
        return _json(model_metadata(loaded.name, loaded.version, loaded.task, loaded.schema, platform))

    async def model_ready(self, request: web.Request) -> web.Response:
        loaded = await self._model(request)
        if isinstance(loaded, web.Response):
            return loaded
        return _json({"name": loaded.name, "ready": True})

    # --- inference -----------------------------------------------------------------------------
    async def infer(self, request: web.Request) -> web.Response:
        loaded = await self._model(request)
        if isinstance(loaded, web.Response):
            return loaded
        if self.answered.refusing:  # the last predictions could not be published (Kafka refused them)
            failure = type(self.answered.failure).__name__
            answer = _error(503, f"the last predictions could not be published ({failure}); retry")
            answer.headers["Retry-After"] = "1"
            return answer
        await self.answered.room()  # back-pressure: answers wait while Kafka or the monitors fall behind
        try:
            parsed = parse_request(await request.read(), loaded.name, now_ms())
        except ProtocolError as exc:
            return _error(exc.status, str(exc))
        return await self._coalesced(loaded.name, parsed)

    async def _coalesced(self, model: str, parsed: InferenceRequest) -> web.Response:
        """Score ``parsed``; requests that arrive while an earlier batch of the same model is scored wait and go
        through the stage together (one stage call, one monitor update, one publish): adaptive batching."""
        key = (model, parsed.joinable)
        answer: asyncio.Future[web.Response] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((parsed, answer))
        if key not in self._drainers:
            self._drainers[key] = asyncio.create_task(self._drain(key))
        return await answer

    async def _drain(self, key: tuple[str, bool]) -> None:
        """Score the waiting requests of ``key``, a batch at a time, until none waits."""
        try:
            while self._waiting.get(key):
                waiting, self._waiting[key] = self._take(self._waiting[key])
                try:
                    answers = await self._score_together(key[0], [parsed for parsed, _ in waiting])
                except Exception as exc:  # noqa: BLE001 - each waiting request gets the failure (a 500)
                    for _, answer in waiting:
                        if not answer.done():
                            answer.set_exception(exc)
                    continue
                for (_, answer), response_ in zip(waiting, answers, strict=True):
                    if not answer.done():
                        answer.set_result(response_)
        finally:
            del self._drainers[key]

    @staticmethod
    def _take(waiting: list[Any]) -> tuple[list[Any], list[Any]]:
        """The next batch (at most :data:`MAX_BATCH_ROWS` rows, at least one request) and the rest."""
        rows = 0
        for i, (parsed, _) in enumerate(waiting):
            rows += len(parsed.records)
            if i and rows > MAX_BATCH_ROWS:
                return waiting[:i], waiting[i:]
        return waiting, []

    async def _score_together(self, model: str, requests: list[InferenceRequest]) -> list[web.Response]:
        if len(requests) == 1:
            return [await self._score(model, requests[0])]
        records: list[HttpRecord] = []
        for parsed in requests:
            records += [replace(r, offset=len(records) + i) for i, r in enumerate(parsed.records)]
        batch = await self.worker.score_batch(records)
        if batch.dead_letters or model not in batch.by_model:  # a bad row: each request on its own, for its 400
            return [await self._score(model, parsed) for parsed in requests]
        await self._answered(batch, requests[0].joinable)
        group = batch.by_model[model]
        answers, start = [], 0
        for parsed in requests:
            end = start + len(parsed.records)
            answers.append(self._answer(model, parsed, group, slice(start, end)))
            start = end
        return answers

    async def _score(self, model: str, parsed: InferenceRequest) -> web.Response:
        """One request through the stage: 400 with the dead letter's reason."""
        batch = await self.worker.score_batch(parsed.records)
        if batch.dead_letters:
            for letter in batch.dead_letters:
                HTTP_REJECTED_ROWS.labels(letter.stage, letter.error_class).inc()
            first = min(batch.dead_letters, key=lambda letter: letter.offset)
            return _error(
                400,
                f"row {first.offset} ({parsed.event_ids[first.offset]}): "
                f"{first.stage}: {first.error_class}: {first.message}",
                row=first.offset,
                stage=first.stage,
                error_class=first.error_class,
                reason=first.message,
                rejected_rows=len(batch.dead_letters),
            )
        await self._answered(batch, parsed.joinable)
        group = batch.by_model[model]
        return self._answer(model, parsed, group, slice(0, len(parsed.records)))

    async def _answered(self, batch: ScoredBatch, joinable: bool) -> None:
        """Write the join records of a scored batch (before its answer: a label sent right after it finds them);
        queue its monitors and predictions (after the answer)."""
        if joinable:
            await self.worker.put_joins(batch)
        self.answered.put(batch)

    async def _emit_answered(self, batch: ScoredBatch) -> None:
        """Monitors, alerts and predictions of answered requests (raises what Kafka raises)."""
        await self.worker.emit(batch, self.publisher, join=False)
        acknowledged = self.publisher.acknowledged()
        acknowledged.add_done_callback(functools.partial(_count_publish_failure, rows_of(batch)))

    @staticmethod
    def _answer(model: str, parsed: InferenceRequest, group: Any, rows: slice) -> web.Response:
        """The response of ``parsed``, whose rows are ``rows`` of the scored ``group``."""
        events = group.event_ids[rows]
        scored = group.scored_in(rows)
        if parsed.explain_top_k is not None:
            explanations = explain_rows(group.loaded.model, group.loaded.task, group.rows[rows], parsed.explain_top_k)
        else:
            explanations = group.explanations[rows] if group.explanations is not None else None
        return _json(response(model, group.loaded.version, parsed, events, scored, explanations))


def _count_emit_failure(rows: int, error: BaseException) -> None:
    """Answered rows whose monitors or predictions failed (Kafka refused them): logged and counted."""
    HTTP_PUBLISH_FAILURES.inc(rows)
    log.warning("%d answered HTTP rows not published: %r", rows, error)


def _count_publish_failure(rows: int, acknowledged: Any) -> None:
    """Done-callback of answered rows' Kafka records: a failure is logged and counted (the client has its answer)."""
    if acknowledged.cancelled():
        return
    error = acknowledged.exception()
    if error is not None:
        HTTP_PUBLISH_FAILURES.inc(rows)
        log.warning("%d HTTP predictions not acknowledged by Kafka: %r", rows, error)
