"""Where each model's learner stands, and its checkpoint in Redis.

One hash per model, ``{prefix}learner:{model}`` (:func:`driftline.contract.keys.learner`), written in ONE
transaction together with the rows learned since the last write (appended to ``{prefix}labelled:{model}``, the
retrain data), so a checkpoint and its rows land together or not at all:

=========================  ======================================================================================
field                      what it holds
=========================  ======================================================================================
``checkpoint``             the signed :class:`~driftline.models.learner.OnlineLearner` (model, label offsets,
                           learned ids, prequential metrics)
``base_version``           the registry version the learner continues from
``learned``                labels learned so far (what ``driftline demo`` and the tests read)
``monitor``                the learning monitor (concept drift, realised metric), exactly as fresh as the model
``comparison``             the challenger lineage compared and its paired losses (with a challenger only)
``challenger``             the challenger's lineage state (with a challenger only)
``challenger_checkpoint``  a River challenger's own learner (with one only)
=========================  ======================================================================================

Every ``snapshot_every_labels`` labels or ``snapshot_every_seconds`` the model is registered as a new version that
the scorers hot-reload (:meth:`LearnerStore.snapshot`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from driftline.contract import keys
from driftline.contract.settings import Settings
from driftline.contract.signing import IntegrityError
from driftline.models.champion import PairedComparison
from driftline.models.learner import OnlineLearner
from driftline.models.registry import ModelRegistry
from driftline.models.version import ModelVersion, UnknownModelError
from driftline.monitoring.cbpe import SUMMARY_FIELD
from driftline.monitoring.monitor import Monitor
from driftline.streams.labelled_rows import Row, queue
from driftline.streams.learning_stage import snapshot_due
from driftline.streams.metrics import LEARNER_METRIC, MODEL_VERSION, REDIS_ERRORS
from driftline.streams.shadow_challenger import ShadowChallenger
from driftline.streams.watch import Watch

log = logging.getLogger(__name__)

#: Rows the labelled stream keeps for retraining (at least this many once learned, fewer than this plus
#: ``ROWS_PER_BLOCK``: :data:`~driftline.streams.labelled_rows.KEEP_ROWS`).
MAX_LABELLED_ROWS = 200_000
#: The rows learned since the last checkpoint go to the labelled stream as blocks of at most this many rows, one
#: ``XADD`` each (:func:`~driftline.streams.labelled_rows.queue`; one entry a row cost Redis ~2.4 us a row, and
#: held it for tens of ms a checkpoint).
ROWS_PER_BLOCK = 2_000
#: Checkpoint fields present only while a challenger is compared (deleted when it is gone).
CHALLENGER_FIELDS = ("comparison", "challenger", "challenger_checkpoint")


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
    #: Learned (features, label) rows not yet written to the labelled stream (written with the checkpoint); a
    #: batch decoded at once as :class:`~driftline.streams.labelled_rows.MatrixRows` (many rows each).
    rows: list[Row] = field(default_factory=list)
    #: The challenger version being compared and the paired losses so far (checkpointed with the learner, so a
    #: restart or a batch learned again after an error neither loses nor double counts a pair).
    comparison: tuple[int, PairedComparison] | None = None
    #: The challenger's lineage and, for a River challenger, its learner (checkpointed with this learner).
    challenger: ShadowChallenger | None = None
    #: Versions made current by someone else whose blob is refused: the learner keeps its base version.
    refused: set[int] = field(default_factory=set)


@dataclass
class Sealed:
    """A checkpoint sealed at one moment (:meth:`LearnerStore.seal`): its hash fields and the rows learned since the
    one before, for :meth:`LearnerStore.commit`."""

    name: str
    mapping: dict[str, Any]
    rows: list[Row]


@dataclass(frozen=True)
class Snapshot:
    """A champion snapshot taken at one moment (:meth:`LearnerStore.take_snapshot`), for
    :meth:`LearnerStore.publish`: a copy of the model, its metrics and labels learned (``since`` of them after the
    snapshot before), the version it follows and the versions the learner stood on."""

    name: str
    model: Any
    metrics: dict[str, float]
    learned: int
    since: int
    parent: int
    in_use: set[int]
    #: The learning monitor's CBPE calibrator then (JSON), registered with the version (None: none fitted yet).
    calibrator: str | None = None


class LearnerStore:
    """Restores learners from their checkpoints (or the registry), writes checkpoints, registers snapshots."""

    def __init__(self, settings: Settings, registry: ModelRegistry, client: aioredis.Redis, watch: Watch):
        self.settings = settings
        self.registry = registry
        self.client = client
        self.watch = watch
        self.prefix = settings.redis_prefix

    def key(self, name: str) -> str:
        return keys.learner(self.prefix, name)

    async def load(self, name: str) -> ModelLearner | None:
        """The learner of ``name`` from its checkpoint, else a new one on the current version (when that one is
        refused, the newest earlier promoted version that verifies); None for a model the registry does not know.
        The learning monitor is restored with it."""
        stored = await self.client.hgetall(self.key(name))
        try:
            meta = await asyncio.to_thread(self.registry.get, name)
        except UnknownModelError:
            return None
        positive = meta.data_summary.get("positive_class") if meta.task == "binary" else None
        self.watch.monitors.pop(name, None)
        window = (self.settings.max_learned_ids, int(self.settings.exactly_once_window_seconds * 1000))
        if not stored:
            meta, model = await self._load_newest_verified(name)
            return ModelLearner(
                name,
                OnlineLearner(model, meta.task, max_learned_ids=window[0], window_ms=window[1]),
                meta.version,
                positive,
            )
        keyring = self.settings.keyring()
        learner = OnlineLearner.restore(stored[b"checkpoint"], hmac_key=keyring, purpose=keys.learner_purpose(name))
        learner.limit_ids(*window)
        state = ModelLearner(name, learner, int(stored[b"base_version"]), positive)
        if learner.model is None:  # a model that does not learn online is not in the checkpoint
            _, learner.model = await asyncio.to_thread(self.registry.load, name, state.base_version)
        if b"comparison" in stored:
            held = orjson.loads(stored[b"comparison"])
            state.comparison = (held["version"], PairedComparison.from_state(held["state"]))
        if b"challenger" in stored:
            blob = stored.get(b"challenger_checkpoint")
            purpose = keys.challenger_purpose(name)
            shadow = OnlineLearner.restore(blob, hmac_key=keyring, purpose=purpose) if blob else None
            state.challenger = ShadowChallenger.from_state(orjson.loads(stored[b"challenger"]), shadow)
        await self.watch.restore(meta, stored.get(b"monitor"))
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

    async def write(self, state: ModelLearner) -> None:
        """Store ``state``'s checkpoint and the rows it learned since the last one (one transaction): :meth:`seal`,
        then :meth:`commit` (on a failure the rows are ``state``'s again, for the next checkpoint)."""
        sealed = await self.seal(state)
        try:
            await self.commit(sealed)
        except BaseException:
            state.rows[:0] = sealed.rows
            raise

    async def seal(self, state: ModelLearner) -> Sealed:
        """``state``'s checkpoint as it stands now, and the rows it learned since the last one (taken from it).

        The learner, its monitor and its challenger are pickled and signed in a thread (never on the event loop:
        a 2 MB learner cost ~150 ms before its ids were kept as arrays). Only the learning path changes them, and
        it waits for this, so what the thread pickles is the state the checkpoint's offsets describe; the learning
        path may go on while :meth:`commit` writes it."""
        monitor = self.watch.monitors.get(state.name)
        mapping = await asyncio.to_thread(self._sealed, state, monitor)
        mapping["base_version"] = state.base_version
        mapping["learned"] = state.learner.learned
        if state.comparison is not None:
            version, comparison = state.comparison
            mapping["comparison"] = orjson.dumps({"version": version, "state": comparison.state()})
        if state.challenger is not None:
            mapping["challenger"] = orjson.dumps(state.challenger.state())
        rows, state.rows = state.rows, []
        state.last_checkpoint = time.monotonic()
        for metric, value in state.learner.metrics().items():
            LEARNER_METRIC.labels(state.name, metric).set(value)
        return Sealed(state.name, mapping, rows)

    async def commit(self, sealed: Sealed) -> None:
        """Write a :meth:`seal`-ed checkpoint and its rows in ONE transaction."""
        absent = [k for k in CHALLENGER_FIELDS if k not in sealed.mapping]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.key(sealed.name), mapping=sealed.mapping)
            if absent:
                pipe.hdel(self.key(sealed.name), *absent)
            stream, counter = keys.labelled(self.prefix, sealed.name), keys.labelled_rows(self.prefix, sealed.name)
            queue(pipe, stream, counter, sealed.rows, MAX_LABELLED_ROWS, ROWS_PER_BLOCK)
            await pipe.execute()

    async def write_base(self, state: ModelLearner) -> None:
        """Right after :meth:`write` and a champion :meth:`snapshot`: the stored checkpoint holds this very learner
        (a snapshot changes nothing that is sealed), only its base version moves to the snapshot (one ``HSET``,
        nothing pickled: a full :meth:`write` again cost a second pickle of the learner and its monitor)."""
        await self.write_base_version(state.name, state.base_version)
        state.last_checkpoint = time.monotonic()

    async def write_base_version(self, name: str, version: int) -> None:
        """Move the stored checkpoint of ``name`` onto ``version`` (see :meth:`write_base`)."""
        await self.client.hset(self.key(name), "base_version", version)

    def _sealed(self, state: ModelLearner, monitor: Monitor | None) -> dict[str, Any]:
        """The signed blobs of ``state``'s checkpoint: learner, monitor, River challenger (run in a thread)."""
        keyring = self.settings.keyring()
        blobs: dict[str, Any] = {
            "checkpoint": state.learner.checkpoint(hmac_key=keyring, purpose=keys.learner_purpose(state.name))
        }
        if monitor is not None:
            blobs["monitor"] = monitor.snapshot(keyring, self.watch.purpose(state.name))
        shadow = state.challenger
        if shadow is not None and shadow.learner is not None:
            purpose = keys.challenger_purpose(state.name)
            blobs["challenger_checkpoint"] = shadow.learner.checkpoint(hmac_key=keyring, purpose=purpose)
        return blobs

    def snapshot_due(self, learner: OnlineLearner, since: int, last: float) -> bool:
        """A new version of ``learner``'s model is due (see :func:`~driftline.streams.learning_stage.snapshot_due`)."""
        every = self.settings.snapshot_every_labels, self.settings.snapshot_every_seconds
        return snapshot_due(learner, since, last, *every, self.settings.snapshot_min_interval_ms / 1000)

    async def snapshot(self, state: ModelLearner) -> None:
        """Register the champion learner's model as the next current version, then prune the registry of ``name``
        to ``keep_versions`` besides what retention always keeps and what this learner stands on (the stored
        checkpoint's base version too: it is rewritten after the snapshot)."""
        self.adopt(state, await self.publish(self.take_snapshot(state)))

    def take_snapshot(self, state: ModelLearner) -> Snapshot:
        """What :meth:`publish` registers, taken from ``state`` now (a copy of the model: the learning path may go
        on meanwhile); the labels counted toward the next snapshot start again from 0."""
        learner, monitor = state.learner, self.watch.monitors.get(state.name)
        calibrator = monitor.calibrator if monitor is not None else None
        taken = Snapshot(
            state.name,
            copy.deepcopy(learner.model),
            learner.metrics(),
            learner.learned,
            state.since_snapshot,
            state.base_version,
            versions_in_use(state),
            calibrator.to_json() if calibrator is not None else None,
        )
        state.since_snapshot, state.last_snapshot = 0, time.monotonic()
        return taken

    async def publish(self, snapshot: Snapshot) -> int:
        """Register a :meth:`take_snapshot` as the next current version and prune the registry (best effort); the
        new version."""
        name, stored_base = snapshot.name, snapshot.parent
        # the calibrator goes with the version (else the parent's is inherited): the scoring monitor applies it
        # from the version's first event in its ordered stream, whenever the learner fitted it
        calibration = {SUMMARY_FIELD: snapshot.calibrator} if snapshot.calibrator is not None else {}
        version = await self._register(
            name,
            snapshot.model,
            snapshot.metrics,
            snapshot.learned,
            stored_base,
            "online learner snapshot",
            True,
            **calibration,
        )
        keep, in_use = self.settings.keep_versions, snapshot.in_use | {stored_base}
        try:  # retention is best effort: the next snapshot prunes what this one could not
            pruned = await asyncio.to_thread(self.registry.prune, name, keep, in_use)
        except redis.RedisError as exc:
            REDIS_ERRORS.labels("registry_prune").inc()
            log.warning("%s: registry not pruned: %r", name, exc)
            return version
        if pruned:
            log.debug("%s: pruned versions %s", name, pruned)
        return version

    @staticmethod
    def adopt(state: ModelLearner, version: int) -> None:
        """``state`` continues from its published snapshot ``version``."""
        state.base_version = version
        MODEL_VERSION.labels(state.name, "learner").set(version)

    async def register_snapshot(
        self, name: str, learner: OnlineLearner, parent: int, note: str, promote: bool, **summary: Any
    ) -> int:
        """Register ``learner``'s model as the next version of ``name`` after ``parent``; its version."""
        return await self._register(
            name, learner.model, learner.metrics(), learner.learned, parent, note, promote, **summary
        )

    async def _register(
        self,
        name: str,
        model: Any,
        metrics: dict[str, float],
        learned: int,
        parent: int,
        note: str,
        promote: bool,
        **summary: Any,
    ) -> int:
        meta = await asyncio.to_thread(self.registry.get, name, parent)
        inherited = {k: v for k, v in meta.data_summary.items() if k != "challenger_root"}  # a promoted one's
        new = await asyncio.to_thread(
            self.registry.register,
            name,
            model,
            schema=meta.feature_schema(),
            task=meta.task,
            parent=parent,
            metrics=metrics,
            data_summary={**inherited, **summary, "labels_learned": learned},
            note=f"{note} after {learned} labels",
            promote=promote,
            snapshot=True,
        )
        return new.version


def versions_in_use(state: ModelLearner) -> set[int]:
    """The registry versions ``state`` stands on: its base version and the challenger lineage it compares."""
    used = {state.base_version}
    if state.comparison is not None:
        used.add(state.comparison[0])
    if state.challenger is not None:
        used |= {state.challenger.root, state.challenger.version}
    return used


def checkpointed_versions(client: redis.Redis, prefix: str, name: str) -> set[int]:
    """The registry versions the stored checkpoint of ``name``'s learner stands on (see :func:`versions_in_use`)."""
    with client.pipeline(transaction=False) as pipe:
        for field in ("base_version", "comparison", "challenger"):
            pipe.hget(keys.learner(prefix, name), field)
        base, comparison, challenger = pipe.execute()
    used = {int(base)} if base is not None else set()
    if comparison is not None:
        used.add(int(orjson.loads(comparison)["version"]))
    if challenger is not None:
        lineage = orjson.loads(challenger)
        used |= {int(lineage["root"]), int(lineage["version"])}
    return used


async def learned_count(client: aioredis.Redis, prefix: str, name: str) -> int:
    """Labels learned so far by the learner of ``name`` (from its checkpoint)."""
    value = await client.hget(keys.learner(prefix, name), "learned")
    return int(value or 0)
