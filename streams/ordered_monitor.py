"""The single ordered monitor of each model: the ``monitor`` topic's consumer, in every worker.

Every worker's scorer hands what it scored of a model to the ``monitor`` topic, keyed by model
(:mod:`driftline.streams.monitor_feed`). The worker that owns a model's partition of that topic runs the model's
one scoring monitor: it merges the scorers' feeds in event-time order (:class:`driftline.streams.feed_merge.
FeedMerger`), watches the released events (drift, prediction drift against the served version's outputs on the
reference inputs, data quality, the CBPE estimate with the calibrator registered with the served version, from
its first event on), takes the alerts' actions and publishes them. The monitor
(with the merger's state: what was monitored per source partition, and the feed offset to read again from) is
checkpointed to Redis every few seconds, before its partition is revoked and at stop; the next owner restores
it and seeks the feed back to that offset, and events already monitored are dropped by source offset. A message
that is not a feed message is dead-lettered (stage ``monitor``), never a crash.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from driftline.contract.records import Alert
from driftline.contract.settings import Settings
from driftline.contract.signing import Keyring
from driftline.models.registry import ModelRegistry
from driftline.monitoring.cbpe import SUMMARY_FIELD, Calibrator
from driftline.monitoring.monitor import Monitor
from driftline.streams.deadletter import DeadLetter
from driftline.streams.feed_merge import FeedMerger, Released
from driftline.streams.metrics import DEAD_LETTERED, MONITOR_FEED, REDIS_ERRORS, STEP_FAILURES
from driftline.streams.model_cache import ModelCache
from driftline.streams.monitor_feed import FeedError, decode_feed
from driftline.streams.publisher import Publisher
from driftline.streams.scoring_stage import LoadedModel
from driftline.streams.watch import Watch

log = logging.getLogger(__name__)

#: Versions whose CBPE calibrators are kept at once (two scorers on two versions switch back and forth).
MAX_CALIBRATORS = 16
#: Carries out the alerts' actions (off the event loop) and queues them for the next publish.
ActHook = Callable[[list[Alert]], Any]
#: The end offsets of those of the given partitions the worker's scorer reads, from its fetch responses.
FetchedEnds = Callable[[list[TopicPartition]], dict[TopicPartition, int]]


def feed_partition(model: str, partitions: Sequence[int]) -> int:
    """The ``monitor`` partition of ``model``'s feed: the one Kafka's default partitioner gives its key.

    >>> feed_partition("default", [0, 1, 2, 3]) in (0, 1, 2, 3)
    True
    """
    ordered = sorted(partitions)
    return DefaultPartitioner()(model.encode(), ordered, ordered)


class OrderedMonitors:
    """The monitors of the models whose ``monitor`` partitions this worker owns (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        watch: Watch,
        models: ModelCache,
        registry: ModelRegistry,
        publisher: Publisher,
        act: ActHook,
        alert_keys: Keyring,
    ):
        self.settings, self.watch, self.models, self.registry = settings, watch, models, registry
        self.publisher, self.act, self.alert_keys = publisher, act, alert_keys
        self.topic = settings.topic("monitor")
        #: The ``events`` partitions (each merger waits for them until their scorers report).
        self.event_partitions: set[int] | None = None
        self.consumer: AIOKafkaConsumer | None = None
        #: The version that scored the prediction reference last, per model (another is loaded when asked).
        self._scorers: dict[str, LoadedModel] = {}
        #: The CBPE calibrator registered with each version looked up lately (None: none), oldest first.
        self._calibrators: dict[tuple[str, int], Calibrator | None] = {}
        #: Whether a batch was handled (or a checkpoint failed) since the monitors were last checkpointed.
        self.unsaved = False
        #: The end of each ``events`` partition this worker's scorer reads, as of its last fetch response (see
        #: :meth:`_ends`); None: every end is asked of the broker.
        self.fetched_ends: FetchedEnds | None = None
        #: ``ListOffsets`` requests sent (a partition the scorer here does not read is asked of the broker).
        self.listed = 0

    async def _events_partitions(self) -> set[int]:
        if self.event_partitions is None:
            found = await self.publisher.producer.partitions_for(self.settings.topic("events"))
            self.event_partitions = set(found or range(self.settings.partitions))
        return self.event_partitions

    # --- assignment -------------------------------------------------------------------------------------------
    async def on_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Forget the monitors of partitions gone (checkpointed by the revoke's flush), restore those of the
        assigned ones and seek each partition to where its models' checkpoints read the feed up to."""
        partitions = sorted(consumer.partitions_for_topic(self.topic) or {tp.partition for tp in assigned})
        self.consumer = consumer
        owned = {tp.partition for tp in assigned}
        for name in list(self.watch.monitors):
            if feed_partition(name, partitions) not in owned:
                self.watch.monitors.pop(name, None)
                self.watch.provisional.pop(name, None)
        try:
            names = await asyncio.to_thread(self.registry.names)
        except redis.RedisError as exc:  # no checkpoint to read: the feed is read from its start
            log.warning("monitor checkpoints unreachable on assignment, reading the feed from its start: %r", exc)
            names = []
        resume: dict[int, list[int | None]] = {}
        for name in names:
            partition = feed_partition(name, partitions)
            if partition not in owned:
                continue
            self.watch.monitors.pop(name, None)  # another worker may have monitored it since: its checkpoint
            monitor = await self._monitor(name)
            merger = getattr(monitor, "feed", None)
            checkpointed = merger is not None and name not in self.watch.provisional
            resume.setdefault(partition, []).append(merger.next_message if checkpointed else None)
        for tp in assigned:
            offsets = resume.get(tp.partition, [None])
            if None in offsets:  # a model never checkpointed (or none known yet): everything not monitored yet
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, min(offsets))  # type: ignore[type-var]

    async def _monitor(self, name: str) -> Monitor | None:
        """The monitor of ``name`` in memory, restored from its checkpoint when not (None: no such model)."""
        if name not in self.watch.monitors or name in self.watch.provisional:
            await self.models.ensure({name})
            loaded = self.models.get(name)
            if loaded is None:
                return None
            await self.watch.ensure([loaded.meta])
        return self.watch.monitors.get(name)

    # --- the feed ---------------------------------------------------------------------------------------------
    async def handle(self, records: list) -> asyncio.Future:
        """Merge a batch of feed messages into the monitors; their alerts go out (returns their acknowledgements)."""
        self.unsaved = True
        letters: list[DeadLetter] = []
        alerts: list[Alert] = []
        merged: dict[str, FeedMerger] = {}
        events = await self._events_partitions()
        ends = await self._ends(events)
        for record in records:
            # Let what became ready meanwhile run first (the scorer's fetch response, its produce request): each
            # message's merge and detectors hold the loop 2-5 ms, and predictions waited behind them at 1,000/s
            await asyncio.sleep(0)
            try:
                feed = decode_feed(record.value)
            except FeedError as exc:
                letters.append(self._dead_letter(record, "FeedError", str(exc)))
                continue
            monitor = await self._monitor(feed.model)
            if monitor is None:
                letters.append(self._dead_letter(record, "UnknownModel", f"no model {feed.model!r} in the registry"))
                continue
            merger = getattr(monitor, "feed", None)
            if merger is None:
                monitor.feed = merger = FeedMerger(events)  # type: ignore[attr-defined]
            try:
                merger.add(record.offset, feed)
            except Exception as exc:  # noqa: BLE001 - decoded but not mergeable (e.g. offsets out of range)
                letters.append(self._dead_letter(record, type(exc).__name__, f"not merged: {exc!r}"))
                continue
            alerts += await self._observe(monitor, merger.release(ends))
            merged[feed.model] = merger
        for model, merger in merged.items():  # once a batch, not a message (13 us a message)
            MONITOR_FEED.labels(model, "buffered").set(merger.buffered)
            MONITOR_FEED.labels(model, "out_of_order").set(merger.out_of_order)
            MONITOR_FEED.labels(model, "forced").set(merger.forced)
            MONITOR_FEED.labels(model, "duplicates").set(merger.duplicates)
        alerts = await self.act(alerts)
        await self.publisher.send_alerts(self.settings.topic("alerts"), alerts, self.alert_keys)
        if letters:
            await self.publisher.send_dead_letters(self.settings.topic("dead-letter"), letters)
            for letter in letters:
                DEAD_LETTERED.labels("monitor", letter.stage, letter.error_class).inc()
        return self.publisher.acknowledged()

    async def _observe(self, monitor: Monitor, released: Released) -> list[Alert]:
        """Watch what the merger released; the alerts (actions not taken yet). A failing monitor is logged and
        counted, never a crash (the events are scored and published already)."""
        fired: list[Alert] = []
        try:
            for run in released.runs:
                if monitor.prediction_reference_due(run.version):  # once per served version
                    scorer = await self._scorer(monitor.model, run.version)
                    if scorer is not None:
                        reference = scorer.scorer.score_batch(monitor.reference_inputs or [])
                        monitor.set_prediction_reference(
                            run.version, [s.prediction for s in reference], [s.probabilities for s in reference]
                        )
                if monitor.calibration_due(run.version):  # from the version's first event on, once per switch
                    found, calibrator = await self._calibrator(monitor.model, run.version)
                    if found:
                        monitor.use_calibration(calibrator, run.version)
                fired += monitor.observe_events(
                    run.event_ids, None, run.predictions, run.probabilities, run.version, run.ts, columns=run.columns
                )
            if released.invalid:
                fired += monitor.observe_invalid(len(released.invalid), released.invalid)
        except Exception as exc:  # noqa: BLE001 - a failing monitor must not stop the others
            STEP_FAILURES.labels(monitor.model, "scoring monitors").inc()
            log.error("monitor of %s failed on %d events: %r", monitor.model, len(released.event_ids), exc)
        return fired

    async def _calibrator(self, name: str, version: int) -> tuple[bool, Calibrator | None]:
        """Whether the calibrator registered with ``version`` of ``name`` was read, and it (None: the version has
        none, is gone, or its calibrator is refused: the one in use is kept). A Redis error reads nothing: the
        monitor looks again at the version's next events."""
        if (name, version) in self._calibrators:
            return True, self._calibrators[name, version]
        loaded = self._held(name, version)
        meta = loaded.meta if loaded is not None else None
        if meta is None:
            try:
                meta = await asyncio.to_thread(self.registry.get, name, version)
            except redis.RedisError as exc:
                REDIS_ERRORS.labels("calibrator_read").inc()
                log.warning("CBPE calibrator of %s v%d not read: %r", name, version, exc)
                return False, None
            except Exception as exc:  # noqa: BLE001 - pruned or refused: the calibrator in use is kept
                log.warning("CBPE calibrator of %s v%d unknown: %r", name, version, exc)
                meta = None
        raw = meta.data_summary.get(SUMMARY_FIELD) if meta is not None else None
        calibrator = None
        if raw is not None:
            try:
                calibrator = Calibrator.from_json(raw)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("CBPE calibrator of %s v%d refused: %r", name, version, exc)
        while len(self._calibrators) >= MAX_CALIBRATORS:
            self._calibrators.pop(next(iter(self._calibrators)))
        self._calibrators[name, version] = calibrator
        return True, calibrator

    def _held(self, name: str, version: int) -> LoadedModel | None:
        """``version`` of ``name`` if the model cache or the prediction reference's scorer holds it."""
        for loaded in (self.models.get(name), self._scorers.get(name)):
            if loaded is not None and loaded.version == version:
                return loaded
        return None

    async def _scorer(self, name: str, version: int) -> LoadedModel | None:
        """The served ``version`` of ``name`` (the cache's, else loaded from the registry once)."""
        held = self._held(name, version)
        if held is not None:
            return held
        try:
            meta, model = await asyncio.to_thread(self.registry.load, name, version)
        except Exception as exc:  # noqa: BLE001 - pruned or refused: no prediction reference for it
            log.warning("prediction reference of %s v%d not scored: %r", name, version, exc)
            return None
        self._scorers[name] = loaded = LoadedModel(meta, model)
        return loaded

    async def _ends(self, partitions: set[int]) -> dict[int, int]:
        """The end offset of each ``events`` partition now (none when the broker does not say: all waited for).

        When this worker's scorer reads every one of them, the high watermarks of its last fetch responses, and
        the broker is not asked: every feed message of this batch was sent after its records were fetched, with
        the ends of every partition of that fetch or a later one, so a partition whose scorer is level with its
        end is level with it as of those records (an event published later comes after them). A ``ListOffsets``
        a batch was ~38 requests a second at 1,000 events/s, each a round trip and a wakeup on the scorer's core
        (the embedded broker's also falls short of the end when the last record batch holds several records).
        Otherwise the broker is asked for all of them (and the scorer's watermarks, where known, raise its
        answers)."""
        topic = self.settings.topic("events")
        if self.consumer is None:
            return {}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        fetched = self.fetched_ends(tps) if self.fetched_ends is not None else {}
        if tps and len(fetched) == len(tps):
            return {tp.partition: offset for tp, offset in fetched.items()}
        self.listed += 1
        try:
            ends = await self.consumer.end_offsets(tps)
        except KafkaError as exc:
            log.warning("end offsets of %s unknown, every partition is waited for: %r", topic, exc)
            return {}
        return {tp.partition: max(offset, fetched.get(tp, offset)) for tp, offset in ends.items()}

    def _dead_letter(self, record: Any, error_class: str, reason: str) -> DeadLetter:
        log.error("monitor feed message at %s:%d refused: %s", record.partition, record.offset, reason)
        return DeadLetter(
            record.topic, record.partition, record.offset, record.key, record.value, "monitor", error_class, reason
        )

    async def flush(self) -> None:
        """Checkpoint the monitors when a batch came since (before a revoke, at stop; the worker's timer does it
        every few seconds, idle polls do not: see :meth:`idle`)."""
        if self.unsaved:
            self.unsaved = False  # set again by a batch handled while the checkpoint is written
            self.unsaved = not await self.watch.save() or self.unsaved

    def idle(self) -> None:
        """An idle poll of the feed checkpoints nothing: the worker's timer does, every few seconds. (The feed
        runs dry between the scorer's batches, up to 20 times a second at the default 50 ms poll: a checkpoint after
        each batch, pickling and compressing every monitor, took ~9% of the worker's CPU in `bench peers`.)"""
