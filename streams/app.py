"""The Faust application of a driftline worker.

Faust owns the process (worker lifecycle, signals, services, timers). The hot paths are Faust services fed by
:class:`driftline.streams.batch_source.BatchSource` (aiokafka ``getmany`` + manual commits): scoring of ``events``,
at concurrency 1 learning from ``labels``, and each model's ordered scoring monitor, fed by every scorer through
``monitor`` (:mod:`driftline.streams.ordered_monitor`).
"""

from __future__ import annotations

import asyncio
import collections
import faulthandler
import gc
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import faust
import mode
import redis
from aiokafka.errors import KafkaError

from driftline.contract import keys
from driftline.contract.records import Alert, now_ms
from driftline.contract.settings import Settings
from driftline.contract.signing import IntegrityError, alert_keyring
from driftline.models.bootstrap import bootstrap_model
from driftline.models.registry import ModelRegistry
from driftline.models.version import UnknownModelError
from driftline.monitoring.actions import choose_action
from driftline.streams.alerts_io import WebhookSender, decode_alert
from driftline.streams.batch_source import BatchSource
from driftline.streams.connections import (
    async_redis_client,
    check_broker,
    confluent_config,
    get_many,
    kafka_kwargs,
    redis_client,
)
from driftline.streams.event_order import event_time, event_times
from driftline.streams.free_memory import release_free_memory
from driftline.streams.health import Health
from driftline.streams.http_api import InferenceApi, listen
from driftline.streams.join_store import JoinStore
from driftline.streams.learning import RETRIABLE_ERRORS, LabelLearner
from driftline.streams.metrics import (
    CHALLENGER_SCORED,
    DEAD_LETTERED,
    EVENTS_SCORED,
    REDIS_ERRORS,
    REVIEW_REQUESTS,
    SCORING_LATENCY,
    observe_many,
    serve_metrics,
)
from driftline.streams.metrics_drift import METRICS, init_model_metrics
from driftline.streams.model_cache import ModelCache
from driftline.streams.monitor_feed import DIRECT, FeedBatch, encode_feed
from driftline.streams.ordered_monitor import OrderedMonitors
from driftline.streams.publisher import MAX_REQUEST_BYTES, Publisher, producer_for
from driftline.streams.redis_dedup import RedisDeduplicator
from driftline.streams.scoring_stage import (
    ModelBatch,
    RawRecord,
    ScoredBatch,
    ScoringPolicy,
    model_names,
    score_records,
)
from driftline.streams.topics import ensure_topics, topic_names
from driftline.streams.watch import Watch

if TYPE_CHECKING:
    from driftline.streams.confluent_producer import ConfluentProducer

log = logging.getLogger(__name__)

MONITOR_CHECKPOINT_SECONDS = 10.0
#: Feed messages (up to 1,000 events each) the ordered monitors take per batch.
MONITOR_FEED_MESSAGES = 16
#: The event time of a partition that has handed nothing over yet.
NEVER = -(2**62)
#: The learner's deferred checkpoints are written at least this often, also when no idle poll of the labels
#: comes (an idle poll writes them at once).
DEFERRED_CHECKPOINT_SECONDS = 2.0
#: How often the event loop beats and the readiness checks run (/healthz, /readyz).
HEALTH_CHECK_SECONDS = 2.0
#: Seconds a readiness check may wait for the broker or Redis.
PROBE_TIMEOUT = 3.0
#: A worker whose service crashed stops gracefully, or is ended this many seconds after the crash.
CRASH_EXIT_SECONDS = 3.0
#: Exit status of a worker that stopped because one of its services crashed.
EXIT_CRASHED = 1
#: Seconds an alert's cross-worker dedup claim may wait for Redis (it runs on the event loop).
DEDUP_SOCKET_TIMEOUT = 0.5
#: How often the C allocator's free pages go back to the system (:mod:`driftline.streams.free_memory`).
FREE_MEMORY_SECONDS = 30.0
#: Seconds the scorer's join records wait for the next batches' before a write (the offsets wait for it too).
JOIN_WRITE_LINGER = 0.2
#: The garbage collector's thresholds in a running worker (Python's default: 700, 10, 10).
GC_THRESHOLDS = (50_000, 20, 100)


def ensure_default_model(registry: ModelRegistry, name: str) -> None:
    """Register the bootstrap model as version 1 of ``name`` when the registry has no such model."""
    try:
        registry.current_version(name) or registry.get(name)
    except UnknownModelError:
        model, schema, task = bootstrap_model()
        registry.register(name, model, schema=schema, task=task, note="bootstrap: River Agrawal synth, 2000 rows")


def score_fetch_wait(settings: Settings) -> int:
    """How long the scorer's fetches may wait on the broker (ms): ``score_fetch_wait_ms``, at most the batch timeout.
    The embedded broker looks for records when a fetch comes, then after half the time left: a fetch sent just
    before the next events waits that half, and every event it brings waited with it (the slowest 1% at 1,000
    events/s, BENCHMARKS.md).

    >>> score_fetch_wait(Settings(score_fetch_wait_ms=10)), score_fetch_wait(Settings(batch_timeout_ms=5))
    (10, 5)
    """
    return min(settings.score_fetch_wait_ms, settings.batch_timeout_ms)


def faust_datadir(settings: Settings, app_id: str) -> str:
    """Faust's data directory for ``app_id``: under the state folder, never the current one.

    Faust formats the path with ``str.format``, so braces in it are escaped.

    >>> from pathlib import Path
    >>> faust_datadir(Settings(state_dir=Path("/var/lib/{x}")), "driftline.worker")
    '/var/lib/{{x}}/driftline.worker-data'
    """
    return str(settings.state_dir / f"{app_id}-data").replace("{", "{{").replace("}", "}}")


class Worker:
    """Everything one worker process runs, built from settings."""

    def __init__(self, settings: Settings, broker_url: str, redis_url: str, loglevel: str = "warning"):
        self.loglevel = loglevel.upper()
        self.settings = settings
        self.broker_url = broker_url
        self.redis_url = redis_url
        self.kafka = kafka_kwargs(settings, broker_url)
        self.registry = ModelRegistry(
            redis_client(settings, redis_url), settings.keyring(), prefix=settings.redis_prefix
        )
        self.alert_keys = alert_keyring(self.registry.keyring)
        self.models = ModelCache(self.registry, self._integrity_failure)
        self.policy = ScoringPolicy.from_settings(settings)
        # created on startup: asyncio clients need the running loop
        self.publisher: Publisher
        self.joins: JoinStore
        self.learning: LabelLearner
        self._pending_alerts: list[Alert] = []
        #: Alerts whose action is still to be taken (see _act).
        self._to_act: list[Alert] = []
        self.thresholds: dict[str, float] = {}
        #: The V2 inference API's listening socket (bound before start, so a taken port fails the command).
        self.http_socket: socket.socket | None = None
        self.http: InferenceApi | None = None
        #: What /healthz and /readyz answer.
        self.health = Health()
        #: True once :meth:`start` created the clients the timers use (they may fire before it finished).
        self.started = False
        self.running: list[BatchSource] = []
        self.webhook: WebhookSender | None = None
        #: The scorer's source (its progress goes to the monitor feed), the event time and the offset it handed
        #: over up to per ``events`` partition, and the models it fed.
        self.score_source: BatchSource | None = None
        self.handed: dict[int, int] = {}
        self.handed_offsets: dict[int, int] = {}
        self.fed: set[str] = {settings.model_name}
        self.monitoring: OrderedMonitors

    # --- scoring -----------------------------------------------------------------------------
    async def score(self, records: list) -> asyncio.Future:
        """Score a batch and queue its output; returns the future of the output's acknowledgements."""
        batch = await self.score_batch(records)
        await self.emit(batch, self.publisher, progress=self.scoring_progress(records, batch))
        return self.publisher.acknowledged()

    async def score_batch(self, records: Sequence[RawRecord]) -> ScoredBatch:
        """Validate, prepare and score ``records`` with the served versions (the pure stage); nothing sent yet."""
        names, parsed = model_names(records, self.policy)
        await self.models.ensure(names)
        return score_records(records, parsed, self.models.get, self.policy, thresholds=self.thresholds)

    async def emit(
        self,
        batch: ScoredBatch,
        publisher: Publisher,
        join: bool = True,
        progress: dict[int, tuple[int, int]] | None = None,
    ) -> None:
        """What a scored batch leads to, for the stream and the HTTP API alike: join records (unless ``join`` is
        False), the monitor feed (with the scorer's ``progress``, from the stream), predictions, reviews, dead
        letters and metrics, queued on ``publisher`` (the caller waits for its acknowledgements)."""
        if join:  # written in the background: the batch's offsets wait for them (durable=joins.mark)
            await self.put_joins(batch, wait=False)
        alerts, self._to_act = self._to_act, []
        await self._act(alerts)
        topic = self.settings.topic
        await publisher.send_many(topic("monitor"), self.feed_messages(batch, progress))
        await publisher.send_many(topic("predictions"), batch.predictions)
        await publisher.send_many(topic("review"), batch.reviews)
        await publisher.send_dead_letters(topic("dead-letter"), batch.dead_letters)
        alerts, self._pending_alerts = self._pending_alerts, []
        await publisher.send_alerts(topic("alerts"), alerts, self.alert_keys)
        for name, group in batch.by_model.items():
            EVENTS_SCORED.labels(name).inc(len(group))
        if batch.reviews:
            REVIEW_REQUESTS.labels(self.settings.model_name).inc(len(batch.reviews))
        for (stage, error_class), count in collections.Counter(
            (letter.stage, letter.error_class) for letter in batch.dead_letters
        ).items():
            DEAD_LETTERED.labels("events", stage, error_class).inc(count)
        observe_many(SCORING_LATENCY, (latency / 1000 for latency in batch.latencies_ms))

    async def put_joins(self, batch: ScoredBatch, wait: bool = True) -> None:
        """The join records of ``batch``'s events (with the challenger's output, if any): what their labels find.
        With ``wait``, returns once the write that takes them ended (unless Redis is unreachable: they stay
        buffered, see :class:`JoinStore`); else they are written in the background."""
        for name, group in batch.by_model.items():
            await self.joins.put_scored(
                name,
                group.event_ids,
                None,  # built from the columns only if needed (the scorer's batches are packed from the columns)
                group.predictions,
                group.probabilities,
                group.scores,
                group.loaded.version,
                group.ts,
                self._shadow(name, group),
                group.columns,
            )
        if wait:
            await self.joins.written()

    def _shadow(self, name: str, group: ModelBatch) -> list[list | None] | None:
        """The challenger's output for the rows of ``group`` ([version, prediction, probabilities, score] each),
        if any."""
        held = self.models.challengers.get(name)
        if held is None:
            return None
        version, challenger = held
        try:
            scored = challenger.score_batch(group.rows)
        except Exception as exc:  # noqa: BLE001 - a failing challenger must never stop the champion
            log.warning("challenger %s v%s failed: %r", name, version, exc)
            return None
        CHALLENGER_SCORED.labels(name).inc(len(scored))
        return [[version, s.prediction, s.probabilities, s.score] if s.error is None else None for s in scored]

    # --- monitoring and alerts ---------------------------------------------------------------
    def feed_messages(
        self, batch: ScoredBatch, progress: dict[int, tuple[int, int]] | None
    ) -> list[tuple[bytes, bytes]]:
        """The monitor feed of a scored batch: per model its events (source partition and offset, event time,
        features, outputs, served version), the invalid events (the default model's data-quality monitor counts
        them) and, from the stream, the scorer's ``progress``, which every model it fed hears (each model's
        merger waits for every partition). The model's ordered monitor is wherever that model's ``monitor``
        partition is owned (:mod:`driftline.streams.ordered_monitor`)."""
        events = self.settings.topic("events")
        default = self.settings.model_name
        invalid = [
            (d.partition if d.topic == events else DIRECT, d.offset, d.error_class)
            for d in batch.dead_letters
            if d.stage in ("deserialize", "validate")
        ]
        names = set(batch.by_model) | (self.fed if progress is not None else set()) | ({default} if invalid else set())
        out: list[tuple[bytes, bytes]] = []
        for name in names:
            group = batch.by_model.get(name)
            mine = invalid if name == default else []
            if group is None:
                feed = FeedBatch.progress_only(name, progress or {}, mine)
            else:
                records = group.records
                feed = FeedBatch(
                    name,
                    group.loaded.version,
                    [r.partition if r.topic == events else DIRECT for r in records],
                    [r.offset for r in records],
                    group.ts,
                    group.event_ids,
                    group.columns,
                    group.predictions,
                    group.probabilities,
                    mine,
                    progress or {},
                )
            self.fed.add(name)
            key = name.encode()
            out += [(key, raw) for raw in encode_feed(feed)]
        return out

    def scoring_progress(self, records: Sequence[RawRecord], batch: ScoredBatch) -> dict[int, tuple[int, int]]:
        """Per ``events`` partition this scorer owns and handed something over of: the event time handed over up
        to, and the offset after the last record handed over (with ``records``, scored as ``batch``). The monitors
        compare that offset with the partition's end: a scorer level with it is not waited for."""
        events = self.settings.topic("events")
        # records come in offset order per partition: a dict keeps each partition's last
        self.handed_offsets.update({r.partition: r.offset + 1 for r in records if r.topic == events})
        for group in batch.by_model.values():  # each partition's last event time (at most its highest: a later
            # event older than one before it only makes the monitors wait a little longer, never reorders)
            last = {r.partition: ts for r, ts in zip(group.records, group.ts, strict=True) if r.topic == events}
            for partition, ts in last.items():
                if ts > self.handed.get(partition, ts - 1):
                    self.handed[partition] = ts
        assigned = self.score_source.assigned if self.score_source is not None else None
        return {
            tp.partition: (self.handed.get(tp.partition, NEVER), self.handed_offsets[tp.partition])
            for tp in assigned or ()
            if tp.partition in self.handed_offsets
        }

    async def acted(self, alerts: list[Alert]) -> list[Alert]:
        """``alerts`` with their actions carried out (off the event loop), e.g. the ordered monitors'."""
        if not alerts:
            return []
        return await asyncio.to_thread(lambda: [self.scoring_watch.act(a) for a in alerts])

    def _integrity_failure(self, name: str, version: int, reason: str) -> None:
        """A refused model version raises a ``model_integrity`` alert and takes its configured action."""
        alert = Alert(
            alert_id=uuid.uuid4().hex,
            kind="model_integrity",
            severity="critical",
            model=name,
            model_version=version,
            detector="hmac-sha256",
            ts=now_ms(),
            message=f"model {name} v{version} refused: {reason}; kept the last good version",
            action=choose_action("model_integrity", self.scoring_watch.config.actions),
        )
        self._to_act.append(alert)  # its action (a rollback: Redis calls) runs off the event loop, see _act

    async def _act(self, alerts: list[Alert]) -> None:
        """Carry out the alerts' actions (they write to Redis: registry, thresholds, retrain requests) off the
        event loop; the alerts go out with the next batch."""
        self._pending_alerts += await self.acted(alerts)

    # --- wiring ------------------------------------------------------------------------------
    def consumer_kwargs(self) -> dict:
        settings = self.settings
        return {
            **self.kafka,
            "session_timeout_ms": settings.session_timeout_ms,
            "heartbeat_interval_ms": settings.heartbeat_interval_ms,
            "rebalance_timeout_ms": settings.rebalance_timeout_ms,
            "max_partition_fetch_bytes": 8 * 1024 * 1024,
            "fetch_max_bytes": 32 * 1024 * 1024,
            "fetch_max_wait_ms": settings.batch_timeout_ms,  # aiokafka's 500 ms long poll would dominate latency
        }

    def score_consumer(self) -> Callable[[], object] | None:
        """What builds the scorer's consumer with ``DRIFTLINE_KAFKA_CLIENT=confluent`` (librdkafka, the same group
        settings as :meth:`consumer_kwargs`); None: aiokafka's, from :meth:`consumer_kwargs`."""
        settings = self.settings
        if settings.kafka_client != "confluent":
            return None
        from driftline.streams.confluent_consumer import (  # noqa: PLC0415 - only when chosen
            ConfluentConsumer,
            librdkafka_warning,
        )

        log.warning(librdkafka_warning())

        config = {
            **confluent_config(settings, self.broker_url),
            "group.id": f"{settings.topic_prefix}scoring",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": settings.heartbeat_interval_ms,
            "fetch.wait.max.ms": score_fetch_wait(settings),
            "max.partition.fetch.bytes": 8 * 1024 * 1024,
            "fetch.max.bytes": 32 * 1024 * 1024,
            "partition.assignment.strategy": "roundrobin",  # aiokafka's: workers of either client share the group
        }
        return lambda: ConfluentConsumer(config)

    def bulk_producer(self) -> ConfluentProducer | None:
        """The librdkafka producer of the scorer's bulk output with ``DRIFTLINE_KAFKA_CLIENT=confluent``."""
        if self.settings.kafka_client != "confluent":
            return None
        from driftline.streams.confluent_producer import ConfluentProducer  # noqa: PLC0415 - only when chosen

        return ConfluentProducer(
            {**confluent_config(self.settings, self.broker_url), "message.max.bytes": MAX_REQUEST_BYTES}
        )

    def sources(self) -> list[BatchSource]:
        """The batch-fed services of this worker, in start order."""
        settings = self.settings
        learn = BatchSource(
            name="learn",
            consumer_kwargs=self.consumer_kwargs(),
            topics=[settings.topic("labels")],
            group_id=f"{settings.topic_prefix}learning",
            handler=self.learning.handle,
            on_assigned=self.learning.on_assigned,
            on_flush=self.learning.flush,
            flush_every=DEFERRED_CHECKPOINT_SECONDS,  # a deferred checkpoint never waits for an idle poll alone
            commit_to_kafka=False,  # the learner's offsets live in its checkpoint (exactly-once)
            retry_on=RETRIABLE_ERRORS,
            max_records=settings.learn_batch_size,
            timeout_ms=settings.batch_timeout_ms,
            on_crash=self._service_crashed,
        )
        self.learning.stopping = lambda: learn.should_stop  # a label waiting for the scorers stops waiting
        monitor = BatchSource(
            name="monitor",
            consumer_kwargs=self.consumer_kwargs(),
            topics=[settings.topic("monitor")],
            group_id=f"{settings.topic_prefix}monitoring",
            handler=self.monitoring.handle,
            on_assigned=self.monitoring.on_assigned,
            on_flush=self.monitoring.flush,  # the monitors' checkpoints, before a revoke and at stop
            on_idle=self.monitoring.idle,  # and every MONITOR_CHECKPOINT_SECONDS (the timer), not on idle polls
            commit_to_kafka=False,  # where each model's monitor read its feed up to lives in its checkpoint
            max_records=MONITOR_FEED_MESSAGES,
            timeout_ms=settings.batch_timeout_ms,
            on_crash=self._service_crashed,
        )
        self.score_source = score = BatchSource(
            name="score",
            consumer_kwargs={**self.consumer_kwargs(), "fetch_max_wait_ms": score_fetch_wait(settings)},
            topics=[settings.topic("events")],
            group_id=f"{settings.topic_prefix}scoring",
            handler=self.score,
            on_flush=self.joins.flush,  # join records buffered while Redis was unreachable (never raises)
            on_idle=self.joins.write_in_background,  # idle polls never wait for Redis: scoring goes on
            durable=self.joins.mark,  # a kill never loses join records waiting for Redis
            backpressure=lambda: self.joins.full,  # while Redis is unreachable, join records never drop
            ordered=True,  # monitors see each model's events in time order across partitions (KIP-353)
            order_by=event_time,  # the events' own ts, not the producer's clock
            order_many=event_times,
            new_consumer=self.score_consumer(),
            max_records=settings.batch_size,
            timeout_ms=settings.batch_timeout_ms,
            on_crash=self._service_crashed,
        )
        self.monitoring.fetched_ends = score.fetched_ends  # the scorer's fetches tell the monitors the ends
        return [learn, monitor, score]

    async def start(self) -> None:
        """Create topics, make sure a model exists, start the producer and /metrics."""
        await ensure_topics(self.settings, self.broker_url)
        await asyncio.to_thread(ensure_default_model, self.registry, self.settings.model_name)
        self.publisher = Publisher(producer_for(self.kafka), bulk=self.bulk_producer())
        await self.publisher.producer.start()
        if self.publisher.bulk is not None:
            await self.publisher.bulk.start()
        client = async_redis_client(self.settings, self.redis_url)
        self.joins = JoinStore(
            client,
            self.settings.redis_prefix,
            self.settings.label_ttl_seconds,
            max_buffered=self.settings.join_buffer_max,
            linger=JOIN_WRITE_LINGER,  # at low rates, one Redis pipeline per 200 ms instead of one per batch
        )
        # Alert claims run on the event loop: a short timeout, so that a hung Redis costs one short wait before
        # the deduplicator falls back to local dedup (a 5 s timeout there stalled scoring while Redis was frozen).
        dedup = RedisDeduplicator(
            redis_client(self.settings, self.redis_url, socket_timeout=DEDUP_SOCKET_TIMEOUT, retry=False),
            prefix=keys.alert_dedup(self.settings.redis_prefix),
        )
        self.scoring_watch = Watch("scoring", self.settings, self.registry, self.registry.client, dedup)
        self.learning = LabelLearner(
            self.settings,
            self.kafka,
            self.registry,
            client,
            self.joins,
            Watch("learning", self.settings, self.registry, self.registry.client, dedup),
        )
        self.learning.publisher = Publisher(self.publisher.producer, bulk=self.publisher.bulk)
        self.monitoring = OrderedMonitors(
            self.settings,
            self.scoring_watch,
            self.models,
            self.registry,
            Publisher(self.publisher.producer, bulk=self.publisher.bulk),
            self.acted,
            self.alert_keys,
        )
        init_model_metrics(self.settings.model_name)
        if self.settings.metrics_port:
            serve_metrics(self.settings.metrics_host, self.settings.metrics_port, self.health)
        await self.models.ensure({self.settings.model_name})
        # What is loaded by now (modules, the default model, clients: ~200k objects) lives as long as the worker:
        # out of the collector's sight, a full collection scans only what came after. A full collection over them
        # held the event loop 115-150 ms of CPU (gc.callbacks), once every few seconds under load: the p99.
        gc.collect()
        gc.freeze()
        # ... and young collections come every 50,000 allocations instead of 700: a batch allocates tens of thousands
        # of short-lived containers (decoded events, row dicts, records) that reference counting frees anyway.
        gc.set_threshold(*GC_THRESHOLDS)
        if self.http_socket is not None:
            self.http = InferenceApi(self, self.settings)
            await self.http.start(self.http_socket)
        self.started = True

    async def stop(self) -> None:
        """Stop the HTTP API, checkpoint the monitors and stop the producer (of a start that got that far)."""
        if self.http is not None:
            await self.http.stop()
        if hasattr(self, "scoring_watch"):
            await self.scoring_watch.save()
        if hasattr(self, "publisher"):
            await self.publisher.producer.stop()
            if self.publisher.bulk is not None:
                await self.publisher.bulk.stop()
        if hasattr(self, "learning"):
            await self.learning.progress.close()
        if self.webhook is not None:  # its aiohttp session ("Unclosed client session" otherwise)
            await self.webhook.close()

    # --- health --------------------------------------------------------------------------------
    async def _service_crashed(self, source: BatchSource, reason: BaseException) -> None:
        """A hot-path service crashed: /healthz says so, and the worker stops (non-zero exit) so that its
        supervisor (systemd, compose, Kubernetes) restarts it instead of it idling as a zombie."""
        self.health.crashed(source.label, repr(reason))
        log.critical("%s crashed: %r; the worker stops (exit %d)", source.label, reason, EXIT_CRASHED)
        ender = threading.Timer(CRASH_EXIT_SECONDS, os._exit, (EXIT_CRASHED,))  # if the graceful stop hangs
        ender.daemon = True
        ender.start()
        os.kill(os.getpid(), signal.SIGTERM)  # Faust's own graceful stop; run_worker turns it into EXIT_CRASHED

    async def check_health(self) -> None:
        """Beat, and run the readiness checks: partitions assigned, broker and Redis reachable, model loaded."""
        self.health.beat()
        if not self.started:
            return
        joined = [s for s in self.running if s.assigned is not None]
        self.health.check(
            "partitions",
            bool(self.running) and len(joined) == len(self.running),
            ", ".join(f"{s.source_name}: {len(s.assigned or ())} assigned" for s in joined) or "no group joined yet",
        )
        try:
            cluster = await asyncio.wait_for(self.publisher.producer.client.fetch_all_metadata(), PROBE_TIMEOUT)
            self.health.check("broker", True, f"{len(cluster.brokers())} broker(s) at {self.broker_url}")
            missing = sorted(set(topic_names(self.settings)) - cluster.topics())
            if missing:  # a broker that lost its data (the embedded one keeps nothing across a restart)
                log.warning("topics missing on the broker (a new or restarted broker?), creating them: %s", missing)
                await asyncio.wait_for(ensure_topics(self.settings, self.broker_url, missing), PROBE_TIMEOUT)
        except (KafkaError, TimeoutError) as exc:
            self.health.check("broker", False, f"{self.broker_url} unreachable: {exc!r}")
        try:
            await asyncio.wait_for(self.joins.client.ping(), PROBE_TIMEOUT)
            self.health.check("redis", True, "ping answered")
        except (redis.RedisError, TimeoutError) as exc:
            self.health.check("redis", False, f"unreachable: {exc!r}")
        await self.models.ensure({self.settings.model_name})  # loaded before the first event asks for it
        served = self.models.get(self.settings.model_name)
        self.health.check(
            "model",
            served is not None,
            f"{self.settings.model_name} v{served.version}" if served else f"{self.settings.model_name} not loaded",
        )

    async def _refresh_thresholds(self) -> None:
        """Decision thresholds set by ``adjust_threshold`` actions (any worker's) for the loaded models."""
        names = self.models.names  # every model this worker scores, monitored here or elsewhere
        if not names:
            return
        try:
            values = await asyncio.to_thread(
                get_many, self.registry.client, [keys.threshold(self.settings.redis_prefix, n) for n in names]
            )
        except redis.RedisError:
            REDIS_ERRORS.labels("threshold_refresh").inc()
            return
        self.thresholds = {n: float(v) for n, v in zip(names, values, strict=True) if v is not None}

    async def reload_check(self) -> None:
        """What the worker reads again every ``reload_check_seconds`` (a timer): buffered join writes, the served
        versions, the thresholds set by actions, and the gauges it exports."""
        await self.joins.flush()  # join writes buffered during a Redis outage, also when no event follows
        await self.models.refresh()
        to_act, self._to_act = self._to_act, []
        await self._act(to_act)  # e.g. a version refused by the refresh: its rollback
        await self._refresh_thresholds()
        self.scoring_watch.export()
        self.learning.watch.export()

    def create_app(self) -> faust.App:
        """The Faust app running this worker's services and timers."""
        settings = self.settings
        app_id = f"{settings.topic_prefix}worker"
        settings.state_dir.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
        app = faust.App(
            app_id,
            datadir=faust_datadir(settings, app_id),
            broker=f"kafka://{self.broker_url}",
            broker_credentials=faust_credentials(settings, self.kafka),
            store="memory://",
            web_enabled=False,
            autodiscover=False,
            topic_partitions=settings.partitions,
            broker_session_timeout=settings.session_timeout_ms / 1000,
            broker_heartbeat_interval=settings.heartbeat_interval_ms / 1000,
            broker_rebalance_timeout=settings.rebalance_timeout_ms / 1000,
            consumer_auto_offset_reset="earliest",
        )
        if not settings.webhook_url:
            # No Faust agent: the batch sources and the publisher have clients of their own. Faust's consumer
            # would form a group of its own at every start (~5 s on the embedded broker), for nothing.
            app.boot_strategy = app.BootStrategy(app, enable_kafka=False)

        @app.timer(settings.reload_check_seconds)
        async def _reload() -> None:
            if self.started:  # timers start with the app, before WorkerService has started the worker
                await self.reload_check()

        @app.timer(HEALTH_CHECK_SECONDS)
        async def _health() -> None:
            await self.check_health()

        @app.timer(MONITOR_CHECKPOINT_SECONDS)
        async def _checkpoint_monitors() -> None:
            if self.started:
                await self.scoring_watch.save()

        @app.timer(FREE_MEMORY_SECONDS)
        async def _free_memory() -> None:
            await asyncio.to_thread(release_free_memory)  # RSS follows what is in use (bounded), not what was

        if settings.webhook_url:
            self._deliver_alerts(app, settings.webhook_url)
        app.service(WorkerService(self, loop=app.loop, beacon=app.beacon))
        return app

    def _deliver_alerts(self, app: faust.App, url: str) -> None:
        """A Faust agent POSTs each alert to the webhook (low volume: Faust's stream path is the right tool;
        the consumer group delivers each alert once across workers)."""
        self.webhook = sender = WebhookSender(
            url, self.alert_keys, retries=self.settings.webhook_retries, on_outcome=METRICS.count_webhook
        )
        topic = app.topic(
            self.settings.topic("alerts"), value_serializer="raw", internal=True, partitions=self.settings.partitions
        )

        @app.agent(topic, name="deliver-alerts")
        async def deliver_alerts(stream: faust.StreamT) -> None:
            async for event in stream.events():
                try:
                    alert = decode_alert(event.value, event.message.headers, self.alert_keys)
                except (ValueError, IntegrityError) as exc:  # forged or foreign: never forwarded
                    log.error("not delivered to the webhook, not a signed alert on %s: %s", topic.get_topic_name(), exc)
                    continue
                await sender.send(alert)


def faust_credentials(settings: Settings, kafka: dict) -> faust.auth.Credentials | None:
    """Faust's own connection gets the same SASL/TLS settings as the aiokafka clients."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(kafka["ssl_context"])
    return faust.SASLCredentials(
        username=kafka.get("sasl_plain_username"),
        password=kafka.get("sasl_plain_password"),
        mechanism=kafka["sasl_mechanism"],
        ssl_context=kafka.get("ssl_context"),
    )


class WorkerService(mode.Service):
    """Starts the worker's clients, then its sources; stops the sources (finishing batches) before the clients."""

    def __init__(self, worker: Worker, **kwargs: object) -> None:
        self.worker = worker
        self.running = worker.running
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        # Faust's spinner handler leaves the root logger at DEBUG: every aiokafka send then builds a LogRecord
        # (measured: 21% of the scoring loop). Keep the level the user asked for.
        logging.getLogger().setLevel(self.worker.loglevel)
        await self.worker.start()
        for source in self.worker.sources():
            self.worker.health.service(source.label, "starting")
            await source.start()
            self.running.append(source)
            self.worker.health.service(source.label, "running")
        await self.worker.check_health()

    async def on_stop(self) -> None:
        for source in reversed(self.running):
            await source.stop()
            self.worker.health.service(source.label, "stopped")
        await self.worker.stop()


def print_tasks(_signum: int, _frame: object) -> None:
    """What each asyncio task of the running loop awaits, on stderr (the SIGQUIT handler after faulthandler's)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # the signal came between two callbacks: no loop is running at this bytecode
        loop = asyncio.get_event_loop_policy().get_event_loop()
    for task in asyncio.all_tasks(loop):
        print(f"task {task.get_name()} awaits:", file=sys.stderr)
        awaited = task.get_coro()
        while awaited is not None:  # down the await chain: a task's own stack shows only its outer coroutine
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
            if frame is not None:
                print(f"  {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}", file=sys.stderr)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    print("end of asyncio tasks", file=sys.stderr, flush=True)


def run_worker(settings: Settings, broker_url: str, redis_url: str, loglevel: str = "warning") -> None:
    """Run a worker until SIGTERM/SIGINT (blocks). Raises :class:`redis.RedisError` when Redis is unreachable
    at start or refuses the deployment's keys, :class:`~driftline.streams.connections.BrokerUnreachable` when no
    Kafka broker answers, and :class:`~driftline.streams.http_api.BindError` when the HTTP port cannot be bound
    (Faust would only log the crash of a half-started worker)."""
    worker = Worker(settings, broker_url, redis_url, loglevel)
    worker.registry.client.ping()
    worker.registry.current_version(settings.model_name)  # a key of the prefix: a user the ACL refuses it fails here
    checking = asyncio.new_event_loop()  # not asyncio.run: that would leave no current loop for Faust
    try:
        checking.run_until_complete(check_broker(settings, broker_url))
    finally:
        checking.close()
    if settings.http_port:
        worker.http_socket = listen(settings.http_host, settings.http_port)
    # `kill -QUIT <pid>` prints every thread's stack (a stuck event loop answers nothing), then what each asyncio
    # task awaits (once the loop gets to it), and the worker goes on
    signal.signal(signal.SIGQUIT, print_tasks)
    faulthandler.register(signal.SIGQUIT, all_threads=True, chain=True)
    try:
        faust.Worker(worker.create_app(), loglevel=loglevel, quiet=True).execute_from_commandline()
    finally:
        if worker.health.crash is not None:  # stopped because a service crashed: a supervisor must restart it
            raise SystemExit(EXIT_CRASHED)
