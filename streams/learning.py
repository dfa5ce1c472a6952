"""The single writer of each model, batch by batch: parses labels, joins them, learns them, checkpoints.

Crash safety: after a batch the dead letters are flushed, then ONE Redis write stores the learner checkpoint
(model, offsets, learned ids, metrics; :mod:`driftline.streams.learner_state`). On partition assignment the
consumer seeks to the offsets of the checkpoints, so a label is learned exactly once across kill -9.

The checkpoint is sealed (pickled and signed) at the end of its batch, then written while the next batch is
fetched, joined and learned; the join records of its labels are deleted, and a due snapshot registered, after that
write. At most one write is in flight: the next checkpoint, a flush, a revoke, a reload from the checkpoints and a
rollback wait for it first. A write that fails puts what it held back (rows, join records to delete, the snapshot's
labels) and leaves the checkpoint deferred; in a batch, its error is the batch's (learned again from the
checkpoints). When someone
else promotes or rolls back a version, the learner continues from that version. A challenger learns in shadow
beside the champion (:mod:`driftline.streams.challenger_track`).

No label stops learning: one that cannot be parsed, joined or learned is dead-lettered with its reason, whatever
the exception (stage ``unexpected`` for one no check anticipated); only Redis and broker errors
(:data:`RETRIABLE_ERRORS`) make the batch be handled again from the checkpoints.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import operator
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from driftline.contract.records import Alert, Label, now_ms, parse_labels
from driftline.contract.settings import Settings
from driftline.contract.signing import IntegrityError, alert_keyring
from driftline.models.registry import ModelRegistry
from driftline.streams.challenger_track import ChallengerTrack
from driftline.streams.connections import log_end_offsets
from driftline.streams.deadletter import DeadLetter
from driftline.streams.join_store import JoinStore
from driftline.streams.labelled_rows import learned_rows
from driftline.streams.learner_state import LearnerStore, ModelLearner, Sealed, Snapshot
from driftline.streams.learning_stage import JoinRecord, learned_targets, offset_bounds
from driftline.streams.metrics import (
    DEAD_LETTERED,
    LABELS_LEARNED,
    LEARNED_IDS,
    LEARNED_IDS_FORGOTTEN_EARLY,
    STEP_FAILURES,
)
from driftline.streams.publisher import Publisher
from driftline.streams.scoring_progress import ScoringProgress, caught_up
from driftline.streams.scoring_stage import dead_letter, rejected, unexpected
from driftline.streams.staged_learning import FrozenModel, learn_staged
from driftline.streams.watch import Watch

log = logging.getLogger(__name__)

JOIN_RETRY_SECONDS = 0.2
#: The fields of the records, labels and join records a batch takes, as columns.
_EVENT_ID, _TS, _LABEL = operator.attrgetter("event_id"), operator.attrgetter("ts"), operator.attrgetter("label")
_PREDICTION, _PROBABILITIES = operator.attrgetter("prediction"), operator.attrgetter("probabilities")
_EXPIRES, _CHALLENGER = operator.attrgetter("expires_ms"), operator.attrgetter("challenger")
_VALUE, _MODEL = operator.attrgetter("value"), operator.attrgetter("model")
_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)
#: Seconds to read the labels partitions' log ends on (re)assignment; past them the batch is retried.
LOG_END_TIMEOUT = 10.0


def by_model(
    records: list[ConsumerRecord], parsed: list[Label | Exception], default: str
) -> tuple[dict[str, tuple[list[ConsumerRecord], list[Label]]], list[tuple[ConsumerRecord, Exception]]]:
    """The records and labels of each model (``default`` for a label that names none), in the order they come, and
    the records whose message is not a label with why; at once for the usual batch (labels of one model only).

    >>> from types import SimpleNamespace as R
    >>> one, two = Label(event_id="e1", label=True, ts=1), Label(event_id="e2", label=True, ts=1, model="b")
    >>> groups, refused = by_model([R(offset=0), R(offset=1), R(offset=2)], [one, ValueError("no"), two], "a")
    >>> {name: [r.offset for r in kept] for name, (kept, _) in groups.items()}, refused
    ({'a': [0], 'b': [2]}, [(namespace(offset=1), ValueError('no'))])
    """
    if set(map(type, parsed)) == {Label} and len(models := set(map(_MODEL, parsed))) == 1:
        return {models.pop() or default: (records, parsed)}, []  # type: ignore[dict-item]
    groups: dict[str, tuple[list[ConsumerRecord], list[Label]]] = {}
    refused = []
    for record, label in zip(records, parsed, strict=True):
        if isinstance(label, Exception):  # no label may stop learning
            refused.append((record, label))
            continue
        kept, labels = groups.setdefault(label.model or default, ([], []))
        kept.append(record)
        labels.append(label)
    return groups, refused


class ScorersBehind(Exception):
    """Labels wait for events the scorers have not passed yet, and the scoring group committed nothing for
    ``join_grace_seconds`` (or learning is stopping): the batch is handled again from the checkpoints."""


#: Errors after which a batch of labels is handled again (BatchSource ``retry_on``) instead of crashing learning:
#: Redis unreachable, the broker refusing the batch's dead letters or alerts (they are sent before the checkpoint,
#: so the batch is learned again from the checkpoint and its letters sent again), or scorers that do not progress.
RETRIABLE_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError, KafkaError, ScorersBehind)


class LabelLearner:
    """Handles batches of ``labels`` records for every model (one instance per worker, concurrency 1)."""

    def __init__(
        self,
        settings: Settings,
        kafka: dict[str, Any],
        registry: ModelRegistry,
        client: aioredis.Redis,
        joins: JoinStore,
        watch: Watch,
    ):
        self.settings = settings
        #: Keyword arguments of this worker's Kafka clients (:func:`kafka_kwargs`), to read the labels' log ends.
        self.kafka = kafka
        self.registry = registry
        self.joins = joins
        self.watch = watch
        self.alerts: list[Alert] = []
        #: Models whose checkpoint was deferred (written by :meth:`flush`).
        self.dirty: set[str] = set()
        #: Per model, (bucket key, event id) of the join records of labels learned since its checkpoint.
        self.learned_joins: dict[str, list[tuple[str, str]]] = defaultdict(list)
        #: The labels consumer (set on assignment) and whether the next batch must first seek back to the
        #: checkpoints (after a Redis error: what was learned in memory since them was dropped).
        self.consumer: AIOKafkaConsumer | None = None
        self.resume_from_checkpoint = False
        #: How far the scorers got through ``events``: a label whose event is not found waits for them.
        self.progress = ScoringProgress(settings, kafka)
        #: True once the labels source is stopping (set by the worker): a join stops waiting for the scorers.
        self.stopping: Callable[[], bool] = lambda: False
        self.store = LearnerStore(settings, registry, client, watch)
        self.challengers = ChallengerTrack(settings, registry, self.store)
        self.publisher: Publisher
        self.learners: dict[str, ModelLearner] = {}
        #: Per model, the frozen copy whose errors concept drift watches (:mod:`driftline.streams.staged_learning`);
        #: dropped with the learners, taken again from the checkpointed model.
        self.frozen: dict[str, FrozenModel] = {}
        #: The checkpoint being written while learning goes on (at most one), and the model it snapshots, if any.
        self.writing: asyncio.Task[None] | None = None
        self.snapshotting: str | None = None

    # --- state ---------------------------------------------------------------------------------
    async def _learner(self, name: str) -> ModelLearner | None:
        if name not in self.learners:
            state = await self.store.load(name)
            if state is None:
                return None
            self.learners[name] = state
        return self.learners[name]

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
        await self._written(quiet=True)  # a write still in flight would land after the reload
        self.learners.clear()  # another worker may have learned since: reload from the checkpoints
        self.frozen.clear()
        self.dirty.clear()
        self.learned_joins.clear()
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
        resume: dict[TopicPartition, int] = {}
        for tp in partitions:
            offsets = [s.learner.next_offset(tp.topic, tp.partition) for s in states]
            known = [o for o in offsets if o is not None] + ([unread[tp]] if tp in unread else [])
            if known:
                resume[tp] = min(known)
        ends = await log_end_offsets(self.kafka, list(resume), LOG_END_TIMEOUT)
        for tp, offset in resume.items():
            if offset > ends[tp]:  # the log is shorter than what was learned from it: a new broker
                self._offsets_went_backwards(tp, offset, ends[tp], states)
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)

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

    async def _follow_registry(self, state: ModelLearner, raw: bytes | None) -> None:
        """Continue from the current version (``raw``: the registry's current version of ``state``'s model, as
        read with the batch's join lookup) when someone else promoted or rolled back."""
        current = None if raw is None else int(raw)
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
        try:
            if self.resume_from_checkpoint:
                await self._resume(records)
                return
            await self._handle(records)
        except RETRIABLE_ERRORS:
            await self._written(quiet=True)  # what a failing write puts back is dropped below
            self.learners.clear()
            self.frozen.clear()
            self.dirty.clear()
            self.learned_joins.clear()  # not learned after all: their records stay for the labels read again
            self.resume_from_checkpoint = True
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
        if self.writing is not None and self.writing.done():
            await self._written()  # its error is this batch's
        bounds = self.settings.ts_bounds(now_ms())
        parsed = parse_labels(list(map(_VALUE, records)), self.settings.max_event_bytes, bounds)
        groups, refused = by_model(records, parsed, self.settings.model_name)
        letters: list[DeadLetter] = [rejected(record, error) for record, error in refused]
        touched = []
        for name, (kept, labels) in groups.items():
            try:
                state = await self._learn(name, kept, labels, letters)
            except RETRIABLE_ERRORS:
                raise
            except Exception as exc:  # noqa: BLE001 - raised before any of them was learned: they alone go
                log.error("labels of %s not learned: %r", name, exc)
                letters += [unexpected(record, exc) for record in kept]
                continue
            if state is not None:
                touched.append(state)
        await self.publisher.send_dead_letters(self.settings.topic("dead-letter"), letters)
        alerts, self.alerts = self.alerts, []
        if alerts:  # their keys are derived only then
            keys = alert_keyring(self.settings.keyring())
            await self.publisher.send_alerts(self.settings.topic("alerts"), alerts, keys)
        await self.publisher.flush()
        for letter in letters:
            DEAD_LETTERED.labels("labels", letter.stage, letter.error_class).inc()
        now = time.monotonic()
        for state in touched:
            # Under load the checkpoint is written at most every checkpoint_interval_ms (it pickles the learner);
            # the offsets live only in it, so deferring it replays more labels after a crash, never learns twice.
            due = self._snapshot_due(state) or self.challengers.snapshot_due(state)
            if now - state.last_checkpoint >= self.settings.checkpoint_interval_ms / 1000 or due:
                await self._checkpoint(state)
            else:
                self.dirty.add(state.name)

    async def _learn(
        self, name: str, records: list[ConsumerRecord], labels: list[Label], letters: list[DeadLetter]
    ) -> ModelLearner | None:
        """Join and learn the ``labels`` of model ``name`` (of ``records``, one each); their dead letters go to
        ``letters``. The learner when it took any label (learned or dead-lettered), for its checkpoint. The batch
        is handled as columns (a list a field, no tuple a label)."""
        state = await self._learner(name)
        if state is None:
            letters += [dead_letter(r, "join", "UnknownModel", f"no model named '{name}'") for r in records]
            return None
        bounds = offset_bounds(records)
        starts = {tp: state.learner.next_offset(*tp) or 0 for tp in bounds}
        if any(low < starts[tp] for tp, (low, _) in bounds.items()):  # some were learned already: not again
            fresh = [r.offset >= starts[r.topic, r.partition] for r in records]
            records, labels = list(itertools.compress(records, fresh)), list(itertools.compress(labels, fresh))
            bounds = offset_bounds(records)
        if not records:
            return None
        # the registry is followed in the join's round trip, unless the snapshot in flight is made current: the
        # learner stands on it already
        found = await self._join(name, labels, state, follow=self.snapshotting != name)
        joins = list(map(_SECOND, found)) if None not in found else [f[1] if f is not None else None for f in found]
        forgotten = state.learner.forgotten_early
        frozen = self.frozen.get(name)
        if frozen is None or frozen.source is not state.learner.model:  # new, reloaded, promoted or rolled back
            every = self.settings.snapshot_every_labels
            frozen = self.frozen[name] = FrozenModel(state.learner.model, state.learner.learned, every)
        outcome, staged = learn_staged(
            state.learner, list(zip(labels, joins, strict=True)), frozen, state.positive_class
        )
        LEARNED_IDS_FORGOTTEN_EARLY.labels(name).inc(state.learner.forgotten_early - forgotten)
        LEARNED_IDS.labels(name).set(state.learner.remembered_ids)
        for index, stage, error_class in outcome.rejected:
            letters.append(dead_letter(records[index], stage, error_class, outcome.messages[index]))
        for (topic, partition), (_, offset) in bounds.items():  # the highest: what mark_offset of each leaves
            state.learner.mark_offset(topic, partition, offset)
        picked = outcome.learned_indices
        if picked == list(range(len(labels))):  # the usual batch: every label learned
            served, kept = joins, found
        else:
            labels, kept, served = [labels[i] for i in picked], [found[i] for i in picked], [joins[i] for i in picked]
        # deleted once the checkpoint that holds them is written (see _checkpoint)
        self.learned_joins[name] += zip(map(_FIRST, kept), map(_EVENT_ID, labels), strict=True)  # type: ignore[arg-type]
        targets = learned_targets(state.learner, list(map(_LABEL, labels)), state.positive_class)
        if len(staged) == len(picked) == len(joins):  # the frozen model predicted every label, every one learned
            concept = list(map(staged.__getitem__, picked))
        else:
            concept = [staged.get(i, joins[i].prediction) for i in picked]  # type: ignore[union-attr]
        # Learned: from here on a failure (other than Redis or the broker) costs monitoring, never the labels
        observed = self._observe(state, labels, served, targets, concept)  # type: ignore[arg-type]
        await self._beside(observed, "monitor outcomes", name)
        learned = list(zip(labels, served, targets, strict=True))
        if state.challenger is not None or any(map(_CHALLENGER, served)):  # else the challenger has nothing to do
            await self._written()  # the challenger track may promote: not while a snapshot is registered
            await self._beside(self.challengers.follow(state, learned), "shadow challenger", name)  # type: ignore[arg-type]
        state.rows += learned_rows(learned)  # a decoded block's rows as its matrix: no feature dict built
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
            STEP_FAILURES.labels(name, what).inc()
            log.error("%s of %s failed after learning: %r", what, name, exc)

    async def flush(self) -> None:
        """Write the deferred checkpoints and wait for them (called between batches: idle poll, before a revoke,
        at stop)."""
        await self._written()  # a Redis error leaves them dirty: written by a later flush or batch
        for name in sorted(self.dirty):
            state = self.learners.get(name)
            if state is not None:
                await self._checkpoint(state)
                await self._written()
            self.dirty.discard(name)

    async def _observe(
        self, state: ModelLearner, labels: list[Label], joins: list[JoinRecord], targets: list[Any], concept: list[Any]
    ) -> None:
        """Feed the learned outcomes (the labels, their join records and targets, as columns) to the learning monitor
        (concept drift on the errors of the frozen model's ``concept`` predictions; the realised metric and CBPE on
        the served ones; label lag)."""
        if not labels:
            return
        monitor = self.watch.monitors.get(state.name)
        if monitor is None:  # the checkpoint held none: a new one, with the reference read off the event loop
            meta = await asyncio.to_thread(self.registry.get, state.name, state.base_version)
            monitor = await self.watch.restore(meta, None)
        ttl_ms = self.settings.label_ttl_seconds * 1000
        alerts = monitor.observe_outcomes(
            list(map(_EVENT_ID, labels)),
            targets,
            list(map(_PREDICTION, joins)),
            list(map(_PROBABILITIES, joins)),
            state.base_version,
            list(map(_TS, labels)),  # event time: the labels' own timestamps
            event_ts=list(map(ttl_ms.__rsub__, map(_EXPIRES, joins))),  # expires_ms - ttl_ms: when it was scored
            concept_predictions=concept,
        )
        if any(alert.action == "rollback" for alert in alerts):
            await self._written()  # rolled back from the current version: the snapshot in flight is registered
        self.alerts += [await asyncio.to_thread(self.watch.act, alert) for alert in alerts]

    async def _join(
        self, name: str, labels: list[Label], state: ModelLearner, follow: bool
    ) -> list[tuple[str, JoinRecord] | None]:
        """(bucket key, join record) of each label; a label whose event is not found waits for the scorers, not
        for a number of seconds (not one ``state``'s learner already learned: its record was deleted then). With
        ``follow``, the registry's current version is read in the first lookup's exchange, and followed
        (:meth:`_follow_registry`) before anything else: no round trip of its own a batch.

        Its event was published before the label, so it lies below where ``events`` ends once the label is read.
        The scorers commit an offset only once the join records below it are in Redis; so after the scoring
        group's committed offsets reach that end (:mod:`driftline.streams.scoring_progress`), a record still
        missing never comes: ``None`` (UnknownEvent). A slow machine only makes the wait longer. When the group
        commits nothing for ``join_grace_seconds`` (no scorer running), or learning stops, :class:`ScorersBehind`
        is raised: the batch is handled again from the checkpoints, no label is dead-lettered for it."""
        ids, at = list(map(_EVENT_ID, labels)), list(map(_TS, labels))
        await self.joins.flush()  # this worker's own join writes buffered during a Redis outage come first
        current = [("GET", self.registry.current_key(name))] if follow else []
        joins, read = await self.joins.lookup_beside(name, ids, at, current)
        if follow:
            await self._follow_registry(state, read[0])
        learner = state.learner
        if None not in joins or all(j is not None or learner.has_learned(e) for j, e in zip(joins, ids, strict=True)):
            return joins
        target = await self.progress.log_ends()  # every event published before these labels lies below
        last: tuple[dict[TopicPartition, int], int] | None = None
        moved = time.monotonic()
        while True:
            committed = await self.progress.committed()  # read before the joins: a miss after it is final
            waiting = [i for i, j in enumerate(joins) if j is None and not learner.has_learned(ids[i])]
            again = await self.joins.lookup(name, [ids[i] for i in waiting], [at[i] for i in waiting])
            for i, found in zip(waiting, again, strict=True):
                joins[i] = found
            missing = sum(joins[i] is None for i in waiting)
            if not missing or caught_up(committed, target):
                return joins
            if (committed, missing) != last:
                last, moved = (committed, missing), time.monotonic()
            elif time.monotonic() - moved > self.settings.join_grace_seconds:
                raise ScorersBehind(
                    f"{missing} labels of {name} wait for their events and the scorers committed nothing for "
                    f"{self.settings.join_grace_seconds:g} s"
                )
            if self.stopping():
                raise ScorersBehind(f"learning stops while {missing} labels of {name} wait for their events")
            await asyncio.sleep(JOIN_RETRY_SECONDS)

    async def _checkpoint(self, state: ModelLearner) -> None:
        """Seal the checkpoint and write it in the background (:meth:`_write`), after the write before it; with a
        challenger (its snapshot replaces the served challenger), all of it before returning.

        A crash between the checkpoint and the base version written after a snapshot leaves a checkpoint whose base
        version is older than the registry's current one; the restarted learner then loads the snapshot, which
        holds exactly the checkpoint's labels.
        """
        await self._written()
        champion, challenger = self._snapshot_due(state), self.challengers.snapshot_due(state)
        if challenger or state.challenger is not None:
            await self._checkpoint_now(state, champion, challenger)
            return
        sealed = await self.store.seal(state)
        learned = self.learned_joins.pop(state.name, [])  # their labels are in the checkpoint
        snapshot = self.store.take_snapshot(state) if champion else None
        self.snapshotting = state.name if champion else None
        self.writing = asyncio.ensure_future(self._write(state, sealed, learned, snapshot))

    async def _write(
        self, state: ModelLearner, sealed: Sealed, learned: list[tuple[str, str]], snapshot: Snapshot | None
    ) -> None:
        """Write a sealed checkpoint, delete the join records of its labels, publish its snapshot and move the
        stored checkpoint onto it; on a failure, put back what is not written and leave the checkpoint deferred."""
        try:
            await self.store.commit(sealed)
        except BaseException:
            state.rows[:0] = sealed.rows
            self.learned_joins[state.name][:0] = learned
            if snapshot is not None:  # due again
                state.since_snapshot += snapshot.since
            self.dirty.add(state.name)
            raise
        try:
            await self.joins.delete(learned)
            if snapshot is not None:
                version = await self.store.publish(snapshot)
                self.store.adopt(state, version)
                await self.store.write_base_version(state.name, version)
        except BaseException:
            self.learned_joins[state.name][:0] = learned  # deleted again with the next checkpoint
            if snapshot is not None and state.base_version == snapshot.parent:  # not published: due again
                state.since_snapshot += snapshot.since
            self.dirty.add(state.name)
            raise

    async def _written(self, quiet: bool = False) -> None:
        """Wait for the checkpoint in flight; its error is raised (``quiet``: only logged)."""
        writing, self.writing = self.writing, None
        if writing is None:
            return
        try:
            await writing
        except RETRIABLE_ERRORS as exc:
            if not quiet:
                raise
            log.warning("a learner checkpoint was not written: %r", exc)
        finally:
            self.snapshotting = None

    async def _checkpoint_now(self, state: ModelLearner, champion: bool, challenger: bool) -> None:
        """Store the checkpoint; when a snapshot is due, register it and store the checkpoint's new base version
        (the whole checkpoint again after a challenger's snapshot)."""
        await self.store.write(state)
        await self.joins.delete(self.learned_joins.pop(state.name, []))  # their labels are in the checkpoint
        if champion:
            await self.store.snapshot(state)
        if challenger:
            await self.challengers.snapshot(state)
        if challenger:  # the challenger's lineage changed: the whole checkpoint again
            await self.store.write(state)
        elif champion:
            await self.store.write_base(state)

    def _snapshot_due(self, state: ModelLearner) -> bool:
        return self.store.snapshot_due(state.learner, state.since_snapshot, state.last_snapshot)
