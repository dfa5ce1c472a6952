"""What answered V2 inference requests still lead to, after their answers: monitors, alerts and ``predictions``.

A request is answered once it is scored and its join records are in Redis (a label sent right after the answer
finds them). Feeding the monitors and queueing the predictions on Kafka follows within
:data:`LINGER_SECONDS`, for all the requests answered meanwhile at once: one monitor update and one publish per
linger instead of one per request. At 500 single-row requests/s those per-request costs were most of the
worker's CPU time per request, and the answers waited for them.

The rows are the ones the stream would have produced: the same monitors see the same rows in the same order,
and every prediction goes to ``predictions``. Rows answered but not yet emitted are bounded (new requests wait
in :meth:`AnsweredBatches.room` while Kafka or the monitors fall behind), a failed emit makes the API answer
503 for a second (:attr:`AnsweredBatches.refusing`), and :meth:`AnsweredBatches.close` emits what is left before
the worker's producer stops.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from driftline.models.feature_columns import FeatureColumns
from driftline.streams.scoring_stage import ModelBatch, ScoredBatch

log = logging.getLogger(__name__)

#: Seconds answered requests wait for others before their monitors and predictions go out together.
LINGER_SECONDS = 0.02
#: Most rows emitted at once (the stream's default batch size): the answers wait for no longer a step of the loop.
MAX_EMIT_ROWS = 500
#: Rows answered but not emitted yet from which new requests wait (Kafka or the monitors fall behind).
MAX_PENDING_ROWS = 20_000
#: Seconds new requests are refused (503) after an emit failed: Kafka is not taking predictions.
FAILURE_HOLD_SECONDS = 1.0


def rows_of(batch: ScoredBatch) -> int:
    """The scored rows of ``batch``."""
    return sum(len(group) for group in batch.by_model.values())


def merge(batches: Sequence[ScoredBatch], max_rows: int = MAX_EMIT_ROWS) -> list[ScoredBatch]:
    """``batches`` in order as few batches of at most ``max_rows`` rows as possible (a larger one stays alone): a
    batch joins the one before unless it holds a model that one holds in another loaded version (a version switch
    starts a new batch, so each monitor sees its versions' rows in order).

    >>> merged = merge([ScoredBatch(predictions=[(b"e1", b"{}")]), ScoredBatch(predictions=[(b"e2", b"{}")])])
    >>> [p[0] for p in merged[0].predictions], len(merged)
    ([b'e1', b'e2'], 1)
    """
    runs: list[list[ScoredBatch]] = []
    rows = 0
    for batch in batches:
        run = runs[-1] if runs else None
        rows += rows_of(batch)
        if (
            run is None
            or rows > max_rows
            or any(
                other.by_model.get(name, group).loaded is not group.loaded
                for other in run
                for name, group in batch.by_model.items()
            )
        ):
            runs.append([batch])
            rows = rows_of(batch)
        else:
            run.append(batch)
    return [_concat(run) for run in runs]


def _concat(run: list[ScoredBatch]) -> ScoredBatch:
    if len(run) == 1:
        return run[0]
    names = dict.fromkeys(name for batch in run for name in batch.by_model)
    return ScoredBatch(
        predictions=[p for batch in run for p in batch.predictions],
        reviews=[r for batch in run for r in batch.reviews],
        dead_letters=[d for batch in run for d in batch.dead_letters],
        by_model={
            name: _concat_groups([batch.by_model[name] for batch in run if name in batch.by_model]) for name in names
        },
        latencies_ms=[latency for batch in run for latency in batch.latencies_ms],
    )


def _concat_groups(groups: list[ModelBatch]) -> ModelBatch:
    """One model's rows of several batches (one loaded version) as one batch of that model."""
    if len(groups) == 1:
        return groups[0]

    def chained(column: str) -> list:
        return list(itertools.chain.from_iterable(getattr(group, column) for group in groups))

    out = ModelBatch(
        groups[0].loaded,
        chained("records"),
        chained("event_ids"),
        chained("ts"),
        FeatureColumns.concat([group.columns for group in groups]),
    )
    out.predictions, out.probabilities = chained("predictions"), chained("probabilities")
    out.scores, out.confidences = chained("scores"), chained("confidences")
    if all(group.explanations is not None for group in groups):
        out.explanations = chained("explanations")
    return out


class AnsweredBatches:
    """Scored batches whose requests are answered, emitted together every :data:`LINGER_SECONDS`.

    ``emit`` is what a batch leads to (:meth:`driftline.streams.app.Worker.emit` without join records, then
    the publisher's acknowledgements); ``on_failure`` is told the rows of a batch whose emit raised (its
    predictions may be missing from Kafka; the answers are out).
    """

    def __init__(
        self,
        emit: Callable[[ScoredBatch], Awaitable[None]],
        on_failure: Callable[[int, BaseException], None],
        linger: float = LINGER_SECONDS,
        max_rows: int = MAX_PENDING_ROWS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.emit = emit
        self.on_failure = on_failure
        self.linger = linger
        self.max_rows = max_rows
        self.clock = clock
        self._waiting: list[ScoredBatch] = []
        #: Rows waiting or being emitted.
        self.pending_rows = 0
        #: When an emit last failed (``clock``) and why; None before any failure.
        self.failed_at: float | None = None
        self.failure: BaseException | None = None
        self._room = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def full(self) -> bool:
        """True while :data:`MAX_PENDING_ROWS` rows or more wait or are being emitted."""
        return self.pending_rows >= self.max_rows

    @property
    def refusing(self) -> bool:
        """True for :data:`FAILURE_HOLD_SECONDS` after an emit failed (the API answers 503 meanwhile)."""
        return self.failed_at is not None and self.clock() - self.failed_at < FAILURE_HOLD_SECONDS

    async def room(self) -> None:
        """Wait while the queue is :attr:`full` (Kafka or the monitors fall behind): answers slow down with them,
        and the rows answered but not emitted stay bounded."""
        while self.full:
            self._room.clear()
            await self._room.wait()

    def put(self, batch: ScoredBatch) -> None:
        """Queue the scored ``batch`` of answered requests; it is emitted within the linger."""
        self._waiting.append(batch)
        self.pending_rows += rows_of(batch)
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(self.linger)
                waiting, self._waiting = self._waiting, []
                rows = sum(map(rows_of, waiting))
                try:
                    for batch in merge(waiting):
                        try:
                            await self.emit(batch)
                        except Exception as exc:  # noqa: BLE001 - the answers are out: counted and logged
                            self.failed_at, self.failure = self.clock(), exc
                            self.on_failure(rows_of(batch), exc)
                        await asyncio.sleep(0)  # answers scored meanwhile go out between two batches
                finally:
                    self.pending_rows -= rows
                    if not self.full:
                        self._room.set()
        finally:
            self._task = None

    async def close(self) -> None:
        """Emit what is queued (at the worker's stop, before its producer stops)."""
        while self._task is not None:
            await asyncio.shield(self._task)
