"""The single writer of each model: joins labels, learns them, checkpoints, and publishes snapshots.

Crash safety: after a batch the dead letters are flushed, then ONE Redis write (``HSET``) stores the learner
checkpoint (model, offsets, learned ids, metrics). On partition assignment the consumer seeks to the offsets of
the checkpoints, so a label is learned exactly once across kill -9. Every ``snapshot_every_labels`` labels or
``snapshot_every_seconds`` the model is registered as a new version that the scorers hot-reload; when someone
else promotes or rolls back a version, the learner continues from that version.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from driftline.contract import keys
from driftline.contract.records import Alert, Label, RecordError, now_ms, parse_label
from driftline.contract.settings import Settings
from driftline.contract.signing import IntegrityError, alert_keyring
from driftline.models.champion import PairedComparison, PromotionPolicy, label_loss, save_comparison
from driftline.models.learner import OnlineLearner
from driftline.models.registry import ModelRegistry
from driftline.models.scoring import Scored
from driftline.models.version import ModelVersion, UnknownModelError
from driftline.streams.deadletter import DeadLetter
from driftline.streams.join_store import JoinStore
from driftline.streams.learning_stage import JoinRecord, learn_batch, snapshot_due, target_for
from driftline.streams.metrics import (
    DEAD_LETTERED,
    LABELS_LEARNED,
    LEARNER_METRIC,
    LEARNING_STEP_FAILURES,
    MODEL_VERSION,
)
from driftline.streams.publisher import Publisher
from driftline.streams.scoring_stage import dead_letter, unexpected
from driftline.streams.shadow_challenger import ShadowChallenger
from driftline.streams.watch import Watch

log = logging.getLogger(__name__)

JOIN_RETRY_SECONDS = 0.2
MAX_LABELLED_ROWS = 200_000
#: Errors after which a batch of labels is handled again (BatchSource ``retry_on``) instead of crashing learning:
#: Redis unreachable, or the broker refusing the batch's dead letters or alerts (they are sent before the
#: checkpoint, so the batch is learned again from the checkpoint and its letters sent again).
RETRIABLE_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError, KafkaError)


@dataclass
class ModelLearner:
    """The learner of one model and where it stands against the registry."""

    name: str
    learner: OnlineLearner
    base_version: int
    positive_class: Any | None
    since_snapshot: int = 0
    last_snapshot: float = field(default_factory=time.monotonic)
    last_checkpoint: float = 0.0
    #: Learned (features, label) rows not yet written to the labelled stream (written with the checkpoint).
    rows: list[tuple[dict[str, Any], Any]] = field(default_factory=list)
    #: The challenger version being compared and the paired losses so far (checkpointed with the learner, so a
    #: restart or a batch learned again after an error neither loses nor double counts a pair).
    comparison: tuple[int, PairedComparison] | None = None
    #: The challenger's lineage and, for a River challenger, its learner (checkpointed with this learner).
    challenger: ShadowChallenger | None = None
    #: Versions made current by someone else whose blob is refused: the learner keeps its base version.
    refused: set[int] = field(default_factory=set)


class LabelLearner:
    """Handles batches of ``labels`` records for every model (one instance per worker, concurrency 1)."""

    def __init__(
        self, settings: Settings, registry: ModelRegistry, client: aioredis.Redis, joins: JoinStore, watch: Watch
    ):
        self.settings = settings
        self.registry = registry
        self.client = client
        self.joins = joins
        self.watch = watch
        self.prefix = settings.redis_prefix
        self.alerts: list[Alert] = []
        #: Models whose checkpoint was deferred (written by :meth:`flush`).
        self.dirty: set[str] = set()
        #: The labels consumer (set on assignment) and whether the next batch must first seek back to the
        #: checkpoints (after a Redis error: what was learned in memory since them was dropped).
        self.consumer: AIOKafkaConsumer | None = None
        self.resume_from_checkpoint = False
        #: A Redis or broker error interrupted learning (a batch or a flush) since the last batch began.
        self.interrupted = False
        self.promotion = PromotionPolicy(
            settings.challenger_min_labels, settings.challenger_alpha, settings.challenger_min_improvement
        )
        self.publisher: Publisher
        self.learners: dict[str, ModelLearner] = {}
        #: Lineage root of each (model, version) seen as a challenger (version metadata never changes).
        self._roots: dict[tuple[str, int], int] = {}
        #: When this worker's scorer last got its partitions; the join grace of older labels runs from there
        #: (None: the scorer has not joined its group yet, so a label whose event is not scored yet keeps waiting).
        self.scoring_since_ms: int | None = None

    def checkpoint_key(self, name: str) -> str:
        return keys.learner(self.prefix, name)

    # --- state ---------------------------------------------------------------------------------
    async def _learner(self, name: str) -> ModelLearner | None:
        if name in self.learners:
            return self.learners[name]
        stored = await self.client.hgetall(self.checkpoint_key(name))
        try:
            meta = await asyncio.to_thread(self.registry.get, name)
        except UnknownModelError:
            return None
        positive = meta.data_summary.get("positive_class") if meta.task == "binary" else None
        self.watch.monitors.pop(name, None)
        if stored:
            learner = OnlineLearner.restore(
                stored[b"checkpoint"], hmac_key=self.settings.keyring(), purpose=keys.learner_purpose(name)
            )
            state = ModelLearner(name, learner, int(stored[b"base_version"]), positive)
            if learner.model is None:  # a model that does not learn online is not in the checkpoint
                _, learner.model = await asyncio.to_thread(self.registry.load, name, state.base_version)
            if b"comparison" in stored:
                held = orjson.loads(stored[b"comparison"])
                state.comparison = (held["version"], PairedComparison.from_state(held["state"]))
            if b"challenger" in stored:
                blob = stored.get(b"challenger_checkpoint")
                shadow = (
                    OnlineLearner.restore(blob, hmac_key=self.settings.keyring(), purpose=keys.challenger_purpose(name))
                    if blob
                    else None
                )
                state.challenger = ShadowChallenger.from_state(orjson.loads(stored[b"challenger"]), shadow)
            self.watch.monitor(meta, stored.get(b"monitor"))
        else:
            meta, model = await self._load_newest_verified(name)
            learner = OnlineLearner(model, meta.task)
            state = ModelLearner(name, learner, meta.version, positive)
        self.learners[name] = state
        return state

    async def _load_newest_verified(self, name: str) -> tuple[ModelVersion, Any]:
        """The current version of ``name``; when its blob is refused, the newest earlier promoted one that verifies
        (as the scorers do; the learner's next snapshot then becomes current). Raises the refusal if none does."""
        try:
            return await asyncio.to_thread(self.registry.load, name, None)
        except IntegrityError as refused:
            history = await asyncio.to_thread(self.registry.history, name)
            for version in reversed(history[:-1]):
                try:
                    loaded = await asyncio.to_thread(self.registry.load, name, version)
                except IntegrityError:
                    continue
                log.warning(
                    "learner of %s starts from v%s: the current version is refused (%s)", name, version, refused
                )
                return loaded
            raise

    async def on_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Seek each assigned partition to where the checkpoints say learning stopped (Redis unreachable: the
        first batch does it, see :meth:`handle`)."""
        self.consumer = consumer
        try:
            await self._seek_to_checkpoints(consumer, assigned, {})
        except RETRIABLE_ERRORS as exc:
            self.resume_from_checkpoint = True
            log.warning("learner checkpoints unreachable on assignment; the first batch seeks to them: %r", exc)
        else:
            self.resume_from_checkpoint = False

    async def _seek_to_checkpoints(
        self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition], unread: dict[TopicPartition, int]
    ) -> None:
        """Reload every learner from its checkpoint and seek each partition to the earliest checkpointed offset
        (``unread``: first offsets of records fetched but not learned, for partitions no checkpoint mentions)."""
        self.learners.clear()  # another worker may have learned since: reload from the checkpoints
        self.dirty.clear()
        names = await asyncio.to_thread(self.registry.names)
        states = []
        for name in names:
            try:
                state = await self._learner(name)
            except RETRIABLE_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken model must not stop learning the others
                log.error("learner of %s not restored: %r; its labels are dead-lettered until it is fixed", name, exc)
                continue
            if state is not None:
                states.append(state)
        ends = await consumer.end_offsets(list(partitions)) if partitions else {}
        for tp in partitions:
            offsets = [s.learner.next_offset(tp.topic, tp.partition) for s in states]
            known = [o for o in offsets if o is not None] + ([unread[tp]] if tp in unread else [])
            if known and min(known) > ends[tp]:  # the log is shorter than what was learned from it: a new broker
                self._offsets_went_backwards(tp, min(known), ends[tp], states)
                await consumer.seek_to_beginning(tp)
            elif known:
                consumer.seek(tp, min(known))

    def _offsets_went_backwards(self, tp: TopicPartition, resume: int, end: int, states: list[ModelLearner]) -> None:
        """The checkpoints point past the end of ``tp``: its log was replaced (a broker that lost its data, e.g.
        the embedded one restarted). Learning resumes from its earliest offset, never skips the new labels
        (ids already learned are duplicates); a warning and an ``offsets_reset`` alert say so."""
        for state in states:
            state.learner.forget_offset(tp.topic, tp.partition)
            self.dirty.add(state.name)
        message = (
            f"{tp.topic}[{tp.partition}] ends at offset {end} but learning had reached {resume}: the broker lost "
            "its log (a new or restarted broker); learning resumes from the earliest offset"
        )
        log.warning(message)
        self.alerts.append(
            Alert(
                alert_id=uuid.uuid4().hex,
                kind="offsets_reset",
                severity="warning",
                model=self.settings.model_name,
                detector="offsets",
                statistic=float(resume - end),
                ts=now_ms(),
                message=message,
                action="none",
            )
        )

    async def on_scoring_assigned(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """This worker's scorer (re)joined its group: labels waiting for their events get the grace from now.

        A (re)started worker's scorer joins its group seconds after the process started (and after the learner):
        timing the grace from process start dead-lettered valid labels as ``UnknownEvent`` after a restart.
        """
        self.scoring_since_ms = int(time.time() * 1000)

    async def _follow_registry(self, state: ModelLearner) -> None:
        """Continue from the current version when someone else promoted or rolled back."""
        current = await asyncio.to_thread(self.registry.current_version, state.name)
        if current is not None and current != state.base_version and current not in state.refused:
            try:
                _, model = await asyncio.to_thread(self.registry.load, state.name, current)
            except IntegrityError as exc:  # the scorers refuse it too, and alert
                state.refused.add(current)
                log.error(
                    "learner of %s stays on v%s: v%s is refused: %s", state.name, state.base_version, current, exc
                )
                return
            state.learner.model = model
            state.base_version = current
            log.info("learner of %s continues from v%s", state.name, current)

    # --- batches -------------------------------------------------------------------------------
    async def handle(self, records: list[ConsumerRecord]) -> None:
        """Learn a batch; on a Redis or broker error (:data:`RETRIABLE_ERRORS`), drop the in-memory learners and
        re-raise (the source retries).

        What was learned in memory since the last checkpoint (deferred ones included) is then dropped, so the next
        call first reloads the checkpoints and seeks back to them instead of learning: the labels after them are
        read and learned again, none lost, none learned twice, none half-applied checkpointed by :meth:`flush`.
        """
        if self.interrupted:
            # Redis or broker trouble (it stalls the scorers too) is like a scorer (re)join: labels whose events
            # are not scored yet wait the grace period from now instead of being dead-lettered as UnknownEvent.
            self.scoring_since_ms = int(time.time() * 1000)
            self.interrupted = False
        try:
            if self.resume_from_checkpoint:
                await self._resume(records)
                return
            await self._handle(records)
        except RETRIABLE_ERRORS:
            self.learners.clear()
            self.dirty.clear()
            self.resume_from_checkpoint = self.interrupted = True
            raise

    async def _resume(self, records: list[ConsumerRecord]) -> None:
        """Seek back to the checkpoints; ``records`` (not learned) are read again from there."""
        assert self.consumer is not None, "a batch comes after an assignment"
        unread: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            unread[tp] = min(unread.get(tp, record.offset), record.offset)
        await self._seek_to_checkpoints(self.consumer, self.consumer.assignment(), unread)
        self.resume_from_checkpoint = False
        log.warning("learning resumes from the checkpoints")

    async def _handle(self, records: list[ConsumerRecord]) -> None:
        groups: dict[str, list[tuple[ConsumerRecord, Label]]] = defaultdict(list)
        letters: list[DeadLetter] = []
        bounds = self.settings.ts_bounds(now_ms())
        for record in records:
            try:
                label = parse_label(record.value, self.settings.max_event_bytes, bounds)
            except RecordError as exc:
                letters.append(dead_letter(record, exc.stage, exc.error_class, exc.reason))
                continue
            except Exception as exc:  # noqa: BLE001 - no label may stop learning
                letters.append(unexpected(record, exc))
                continue
            groups[label.model or self.settings.model_name].append((record, label))
        touched = []
        for name, items in groups.items():
            try:
                state = await self._learn(name, items, letters)
            except RETRIABLE_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - raised before any of them was learned: they alone go
                log.error("labels of %s not learned: %r", name, exc)
                letters += [unexpected(record, exc) for record, _ in items]
                continue
            if state is not None:
                touched.append(state)
        await self.publisher.send_dead_letters(self.settings.topic("dead-letter"), letters)
        alerts, self.alerts = self.alerts, []
        await self.publisher.send_alerts(self.settings.topic("alerts"), alerts, alert_keyring(self.settings.keyring()))
        await self.publisher.flush()
        for letter in letters:
            DEAD_LETTERED.labels("labels", letter.stage, letter.error_class).inc()
        now = time.monotonic()
        for state in touched:
            # Under load the checkpoint is written at most every checkpoint_interval_ms (it pickles the learner);
            # the offsets live only in it, so deferring it replays more labels after a crash, never learns twice.
            due = self._snapshot_due(state) or self._challenger_snapshot_due(state)
            if now - state.last_checkpoint >= self.settings.checkpoint_interval_ms / 1000 or due:
                await self._checkpoint(state)
            else:
                self.dirty.add(state.name)

    async def _learn(
        self, name: str, items: list[tuple[ConsumerRecord, Label]], letters: list[DeadLetter]
    ) -> ModelLearner | None:
        """Join and learn the labels of model ``name``; their dead letters go to ``letters``. The learner when it
        took any label (learned or dead-lettered), for its checkpoint."""
        state = await self._learner(name)
        if state is None:
            letters += [dead_letter(r, "join", "UnknownModel", f"no model named '{name}'") for r, _ in items]
            return None
        fresh = [(r, lab) for r, lab in items if r.offset >= (state.learner.next_offset(r.topic, r.partition) or 0)]
        if not fresh:
            return None
        await self._follow_registry(state)
        joins = await self._join(name, fresh)
        outcome = learn_batch(
            state.learner, [(lab, j) for (_, lab), j in zip(fresh, joins, strict=True)], state.positive_class
        )
        for index, stage, error_class in outcome.rejected:
            letters.append(dead_letter(fresh[index][0], stage, error_class, outcome.messages[index]))
        for record, _ in fresh:
            state.learner.mark_offset(record.topic, record.partition, record.offset)
        learned = [
            (fresh[i][1], joins[i], state.learner.coerce(target_for(fresh[i][1].label, state.positive_class)))
            for i in outcome.learned_indices
        ]
        # Learned: from here on a failure (other than Redis or the broker) costs monitoring, never the labels
        await self._beside(self._observe(state, learned), "monitor outcomes", name)  # type: ignore[arg-type]
        await self._beside(self._shadow(state, learned), "shadow challenger", name)  # type: ignore[arg-type]
        state.rows += [(join.x, y) for _, join, y in learned]  # type: ignore[union-attr]
        state.since_snapshot += outcome.learned
        LABELS_LEARNED.labels(name).inc(outcome.learned)
        return state

    @staticmethod
    async def _beside(work: Awaitable[None], what: str, name: str) -> None:
        """Run what follows learning; an unexpected failure is logged and counted, Redis and broker errors raise."""
        try:
            await work
        except RETRIABLE_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 - the labels are learned: they must not be lost or dead-lettered
            LEARNING_STEP_FAILURES.labels(name, what).inc()
            log.error("%s of %s failed after learning: %r", what, name, exc)

    async def flush(self) -> None:
        """Write the deferred checkpoints (called between batches: idle poll, before a revoke, at stop)."""
        try:
            for name in sorted(self.dirty):
                state = self.learners.get(name)
                if state is not None:
                    await self._checkpoint(state)
        except RETRIABLE_ERRORS:
            self.interrupted = True  # still dirty: written by a later flush or batch
            raise
        self.dirty.clear()

    async def _observe(self, state: ModelLearner, learned: list[tuple[Label, JoinRecord, Any]]) -> None:
        """Feed the learned outcomes to the learning monitor (concept drift, realised metric, label lag)."""
        if not learned:
            return
        meta = await asyncio.to_thread(self.registry.get, state.name, state.base_version)
        monitor = self.watch.monitor(meta)
        ttl_ms = self.settings.label_ttl_seconds * 1000
        alerts = monitor.observe_outcomes(
            [label.event_id for label, _, _ in learned],
            [y for _, _, y in learned],
            [join.prediction for _, join, _ in learned],
            [join.probabilities for _, join, _ in learned],
            state.base_version,
            [label.ts for label, _, _ in learned],  # event time: the labels' own timestamps
            event_ts=[join.expires_ms - ttl_ms for _, join, _ in learned],
        )
        self.alerts += [await asyncio.to_thread(self.watch.act, alert) for alert in alerts]

    async def _shadow(self, state: ModelLearner, learned: list[tuple[Label, JoinRecord, Any]]) -> None:
        """The challenger learns what the champion learned (River), then both are compared on those labels."""
        if state.challenger is None and not any(join.challenger for _, join, _ in learned):
            return  # no challenger (the scorers shadow-score a newly set one before its first labels come back)
        shadow = await self._sync_challenger(state)
        if shadow is None or not learned:
            return
        versions = {join.challenger[0] for _, join, _ in learned if join.challenger}
        lineage = {v for v in versions if await self._root(state.name, v) == shadow.root}
        shadow.learn([(label.event_id, join.x, y, join.challenger) for label, join, y in learned], lineage)
        # events scored before the challenger was promoted, cleared or replaced carry another lineage: skip them
        shadowed = [(join, y) for _, join, y in learned if join.challenger and join.challenger[0] in lineage]
        if shadowed:
            await self._compare(state, shadow, shadowed)

    async def _sync_challenger(self, state: ModelLearner) -> ShadowChallenger | None:
        """The challenger the registry names now; a new one (or another version) is loaded from the registry."""
        current = await asyncio.to_thread(self.registry.challenger_version, state.name)
        if current is None:
            state.challenger = None
            return None
        if state.challenger is not None and state.challenger.version == current:
            return state.challenger
        try:
            meta, model = await asyncio.to_thread(self.registry.load, state.name, current)
        except (IntegrityError, UnknownModelError) as exc:  # the scorers refuse it too, and alert
            log.warning("challenger %s v%s not loaded: %s", state.name, current, exc)
            state.challenger = None
            return None
        learner = None
        if hasattr(model, "learn_one"):
            learner = OnlineLearner(model, meta.task)
        state.challenger = ShadowChallenger(await self._root(state.name, current), current, learner)
        return state.challenger

    async def _root(self, name: str, version: int) -> int:
        """The version that started the challenger lineage of ``version`` (itself unless a learner snapshot)."""
        if (name, version) not in self._roots:
            try:
                meta = await asyncio.to_thread(self.registry.get, name, version)
                self._roots[name, version] = int(meta.data_summary.get("challenger_root", version))
            except UnknownModelError:
                return version
        return self._roots[name, version]

    async def _compare(
        self, state: ModelLearner, shadow: ShadowChallenger, shadowed: list[tuple[JoinRecord, Any]]
    ) -> None:
        """Pair champion and challenger losses on the same joined labels; store the result; maybe promote."""
        if state.comparison is None or state.comparison[0] != shadow.root:
            state.comparison = (shadow.root, PairedComparison(alpha=self.settings.challenger_alpha))
        task, comparison = state.learner.task, state.comparison[1]
        for join, y in shadowed:
            _, prediction, probabilities, score = join.challenger  # type: ignore[misc]
            champion = Scored(join.prediction, join.probabilities, join.score, None)
            comparison.update(
                label_loss(task, y, champion), label_loss(task, y, Scored(prediction, probabilities, score, None))
            )
        result = comparison.result()
        await asyncio.to_thread(
            save_comparison,
            self.registry.client,
            self.prefix,
            state.name,
            result,
            champion_version=shadowed[-1][0].version,  # the version that served the latest paired label
            challenger_version=shadow.version,
        )
        decision = self.promotion.decide(result)
        if self.settings.challenger_auto_promote and decision.promote:
            if shadow.since_snapshot:  # what it learned since its last snapshot goes into the promoted version
                await self._snapshot_challenger(state)
            await asyncio.to_thread(self.registry.promote, state.name, shadow.version)
            await asyncio.to_thread(self.registry.set_challenger, state.name, None)
            state.comparison = state.challenger = None
            log.warning("promoted challenger %s v%s: %s", state.name, shadow.version, decision.reason)

    async def _join(self, name: str, items: list[tuple[ConsumerRecord, Label]]) -> list[JoinRecord | None]:
        """Join records; a young label whose event is not scored yet waits up to the grace period.

        A label is young by its Kafka timestamp, at most the time this join began (the producer may set it: one
        ten years ahead would hold learning for ten years)."""
        ids = [label.event_id for _, label in items]
        await self.joins.flush()  # this worker's own join writes buffered during a Redis outage come first
        joins = await self.joins.get_many(name, ids)
        grace_ms = self.settings.join_grace_seconds * 1000
        began = int(time.time() * 1000)
        arrived = [min(record.timestamp, began) for record, _ in items]
        while True:
            now = int(time.time() * 1000)
            since = self.scoring_since_ms if self.scoring_since_ms is not None else now
            waiting = [i for i in range(len(items)) if joins[i] is None and max(arrived[i], since) + grace_ms > now]
            if not waiting:
                return joins
            await asyncio.sleep(JOIN_RETRY_SECONDS)
            for i, found in zip(waiting, await self.joins.get_many(name, [ids[i] for i in waiting]), strict=True):
                joins[i] = found

    async def _checkpoint(self, state: ModelLearner) -> None:
        """Store the checkpoint; when a snapshot is due, register it and store the checkpoint again.

        A crash between the two writes leaves a checkpoint whose base version is older than the registry's
        current one; the restarted learner then loads the snapshot, which holds exactly the checkpoint's labels.
        """
        await self._write_checkpoint(state)
        champion, challenger = self._snapshot_due(state), self._challenger_snapshot_due(state)
        if champion:
            await self._snapshot(state)
        if challenger:
            await self._snapshot_challenger(state)
        if champion or challenger:
            await self._write_checkpoint(state)

    def _snapshot_due(self, state: ModelLearner) -> bool:
        every = self.settings.snapshot_every_labels, self.settings.snapshot_every_seconds
        return snapshot_due(state.learner, state.since_snapshot, state.last_snapshot, *every)

    def _challenger_snapshot_due(self, state: ModelLearner) -> bool:
        shadow, every = state.challenger, (self.settings.snapshot_every_labels, self.settings.snapshot_every_seconds)
        return (
            shadow is not None
            and shadow.learner is not None
            and snapshot_due(shadow.learner, shadow.since_snapshot, shadow.last_snapshot, *every)
        )

    async def _write_checkpoint(self, state: ModelLearner) -> None:
        blob = state.learner.checkpoint(hmac_key=self.settings.keyring(), purpose=keys.learner_purpose(state.name))
        mapping: dict[str, Any] = {
            "checkpoint": blob,
            "base_version": state.base_version,
            "learned": state.learner.learned,
        }
        if state.name in self.watch.monitors:
            mapping["monitor"] = self.watch.snapshot(state.name)
        if state.comparison is not None:
            version, comparison = state.comparison
            mapping["comparison"] = orjson.dumps({"version": version, "state": comparison.state()})
        shadow = state.challenger
        if shadow is not None:
            mapping["challenger"] = orjson.dumps(shadow.state())
            if shadow.learner is not None:
                mapping["challenger_checkpoint"] = shadow.learner.checkpoint(
                    hmac_key=self.settings.keyring(), purpose=keys.challenger_purpose(state.name)
                )
        absent = [k for k in ("comparison", "challenger", "challenger_checkpoint") if k not in mapping]
        # One transaction: the checkpoint and the rows it learned (the retrain data) land together or not at all
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.checkpoint_key(state.name), mapping=mapping)
            if absent:
                pipe.hdel(self.checkpoint_key(state.name), *absent)
            stream = keys.labelled(self.prefix, state.name)
            for x, y in state.rows:
                pipe.xadd(
                    stream, {"x": orjson.dumps(x), "y": orjson.dumps(y)}, maxlen=MAX_LABELLED_ROWS, approximate=True
                )
            await pipe.execute()
        state.rows.clear()
        state.last_checkpoint = time.monotonic()
        for metric, value in state.learner.metrics().items():
            LEARNER_METRIC.labels(state.name, metric).set(value)

    async def _register_snapshot(
        self, name: str, learner: OnlineLearner, parent: int, note: str, promote: bool, **summary: Any
    ) -> int:
        """Register ``learner``'s model as the next version of ``name`` after ``parent``; its version."""
        meta = await asyncio.to_thread(self.registry.get, name, parent)
        inherited = {k: v for k, v in meta.data_summary.items() if k != "challenger_root"}  # a promoted one's
        new = await asyncio.to_thread(
            self.registry.register,
            name,
            learner.model,
            schema=meta.feature_schema(),
            task=meta.task,
            parent=parent,
            metrics=learner.metrics(),
            data_summary={**inherited, **summary, "labels_learned": learner.learned},
            note=f"{note} after {learner.learned} labels",
            promote=promote,
        )
        return new.version

    async def _snapshot(self, state: ModelLearner) -> None:
        version = await self._register_snapshot(
            state.name, state.learner, state.base_version, "online learner snapshot", promote=True
        )
        state.base_version, state.since_snapshot, state.last_snapshot = version, 0, time.monotonic()
        MODEL_VERSION.labels(state.name, "learner").set(version)

    async def _snapshot_challenger(self, state: ModelLearner) -> None:
        """Register what the River challenger learned as the next version of its lineage and serve it in shadow."""
        shadow = state.challenger
        assert shadow is not None and shadow.learner is not None
        version = await self._register_snapshot(
            state.name,
            shadow.learner,
            shadow.version,
            "challenger snapshot in shadow",
            promote=False,
            challenger_root=shadow.root,
        )
        self._roots[state.name, version] = shadow.root
        if await asyncio.to_thread(self.registry.replace_challenger, state.name, shadow.version, version):
            shadow.snapshotted(version)
            MODEL_VERSION.labels(state.name, "challenger_learner").set(version)
        else:  # set or cleared meanwhile with `driftline models challenge`: the next batch follows the registry
            log.warning("challenger of %s changed meanwhile; snapshot v%s is not served", state.name, version)
            state.challenger = None


async def learned_count(client: aioredis.Redis, prefix: str, name: str) -> int:
    """Labels learned so far by the learner of ``name`` (from its checkpoint)."""
    value = await client.hget(keys.learner(prefix, name), "learned")
    return int(value or 0)
