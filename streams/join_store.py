"""What a label is joined to: each scored event's prepared features, served prediction and model version, kept in
Redis as a compact binary record (:mod:`driftline.streams.join_codec`) until its label is learned or late.

Records are grouped to cut Redis's per-key cost: event time is cut in slices of an eighth of the label TTL, and the
records of a slice spread over ``B`` hashes by a CRC32 of the event id (``P join:N:SLICE:BUCKET``, field = event id,
value = record). ``B`` is chosen by the first writer of a slice from how many events the previous slice held (about
:data:`EVENTS_PER_BUCKET` a hash, so each stays in Redis's compact listpack encoding) and kept in the slice's hash
``P join:N:SLICE`` (``buckets``, ``events``) for the readers. A hash expires a label TTL and one slice after its last
write; the learner deletes each record once the checkpoint that holds its label is written, so Redis holds only the
events still waiting for a label. The slices that hold records are listed in the set ``P join-slices:N`` (a slice
whose hash expired leaves it when a lookup reads the list next: a lookup keeps the list of the one before while
its labels are found in slices it holds near enough, see :meth:`JoinStore.lookup`); a label is looked up in each,
nearest to its own timestamp first (its event's slice is usually its own or the one before). The feature names of
each record's layout are stored once per model (``P join-layout:N:DIGEST``).

Writes go to a buffer and reach Redis in the background, so the scorer never waits for them (it scores the next
batch meanwhile); :meth:`JoinStore.mark` tells a batch when its records are stored (its offsets are committed only
then). With ``linger``, a write starts once the oldest record buffered waited that long or ``linger_records`` are
buffered: at low rates, one pipeline takes the records of several batches (a bucket's HSET and EXPIRE once for
all of them) instead of one each.

When Redis is unreachable, writes wait in the buffer. After a failed write, or while a write is still waiting for
Redis (a hung server answers nothing until the socket timeout), the scorer only buffers, so scoring keeps its pace;
the next batch after ``retry_seconds``, and the worker's timer, retry. The buffer never drops a record: once it
holds ``max_buffered`` records it is :attr:`JoinStore.full` and the scorer pauses consumption until Redis took them
(back-pressure; ``driftline_join_buffered`` and ``driftline_consumption_paused`` say so).

>>> slices = JoinSlices(ttl_ms=8_000)
>>> slices.of(5_000), slices.order([2, 3, 4, 5, 6], 5_000)
(5, [5, 4, 6, 3, 2])
>>> slices.buckets_for(10), slices.buckets_for(100), slices.buckets_for(100_000)
(1, 2, 2048)
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import math
import operator
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import redis
import redis.asyncio as aioredis

from driftline.contract import keys
from driftline.models.feature_columns import FeatureColumns
from driftline.streams.connections import read_many, write_many
from driftline.streams.join_codec import (
    decode_blocks,
    decode_record,
    encode_batch,
    encode_record,
    float_blocks,
    layout_digest,
    record_layout,
)
from driftline.streams.learning_stage import JoinRecord
from driftline.streams.metrics import JOIN_BUFFERED, REDIS_ERRORS

log = logging.getLogger(__name__)

#: The (model, slice) and the event id of a buffered ``(model, slice, event_id, value)``.
_SLICE_OF, _EVENT_ID = operator.itemgetter(0, 1), operator.itemgetter(2)

#: Records written to Redis in one pipeline when a buffer is flushed.
FLUSH_CHUNK = 5_000
#: Seconds after a failed write during which batches only buffer (the timer still retries).
RETRY_SECONDS = 1.0
#: Records buffered that start a write at once, whatever the linger.
LINGER_RECORDS = 1_000
#: Slices per label TTL: a record outlives its label's deadline by at most two slices.
SLICES_PER_TTL = 8
#: Records a bucket hash aims at (Redis keeps a hash of up to 128 fields of up to 64 bytes as one listpack).
EVENTS_PER_BUCKET = 64
#: Below this, a slice's start plus an event-time delta (under 2**56) and a TTL is exact in an int64.
_EXACT_INT64 = 1 << 61
#: Buckets of a slice whose previous slice is unknown, and the most a slice gets.
DEFAULT_BUCKETS, MAX_BUCKETS = 64, 1 << 20


def event_hashes(event_ids: Iterable[str]) -> list[int]:
    """The hash that places each event's join record in a bucket of its slice (the record's bucket is the hash
    modulo the slice's buckets): the CRC32 of its id's UTF-8, one list for a batch (writes and lookups hash every id
    of theirs at once).

    >>> event_hashes(["e1", "e1", "é"]) == [zlib.crc32(b"e1"), zlib.crc32(b"e1"), zlib.crc32("é".encode())]
    True
    """
    crc32 = zlib.crc32
    return [crc32(event_id.encode()) for event_id in event_ids]


@dataclass(frozen=True)
class JoinSlices:
    """Which slice of event time and which bucket of it holds a record (pure arithmetic)."""

    ttl_ms: int

    @functools.cached_property
    def length_ms(self) -> int:
        return max(1, self.ttl_ms // SLICES_PER_TTL)

    def of(self, ts: int) -> int:
        return ts // self.length_ms

    def order(self, live: Sequence[int], label_ts: int) -> list[int]:
        """The ``live`` slices in the order a label at ``label_ts`` looks for its event in them: nearest to the
        label's own slice first, the earlier of two equally near (labels come after their events)."""
        return self.order_around(live, self.of(label_ts))

    @staticmethod
    def order_around(live: Sequence[int], own: int) -> list[int]:
        """:meth:`order` for a label in slice ``own``."""
        return sorted(live, key=lambda k: (abs(own - k), k > own))

    @staticmethod
    def buckets_for(events: int) -> int:
        """Buckets for a slice after one of ``events`` events: a power of two, about
        :data:`EVENTS_PER_BUCKET` events each."""
        return min(MAX_BUCKETS, 1 << max(0, math.ceil(math.log2(max(1, events) / EVENTS_PER_BUCKET))))

    @staticmethod
    def bucket(buckets: int, event_id: str) -> int:
        """The bucket of ``event_id`` among ``buckets``: its :func:`event_hashes` value modulo ``buckets``."""
        return event_hashes([event_id])[0] % buckets

    def record(self, raw: bytes, slice_index: int, layouts: dict[int, tuple[str, ...]]) -> JoinRecord | None:
        """The record ``raw`` read from slice ``slice_index`` (None when unreadable or its layout unknown)."""
        try:
            return self.decoded(raw, slice_index, layouts)
        except (KeyError, ValueError):
            return None

    def decoded(self, raw: bytes, slice_index: int, layouts: dict[int, tuple[str, ...]]) -> JoinRecord:
        """:meth:`record`, raising KeyError when its layout is not in ``layouts``, ValueError when unreadable."""
        x, prediction, proba, score, version, delta, shadow = decode_record(raw, layouts)
        return JoinRecord(
            x, prediction, proba, score, version, slice_index * self.length_ms + delta + self.ttl_ms, shadow
        )

    def decoded_many(
        self, raws: Sequence[bytes], slice_indices: Sequence[int], layouts: dict[int, tuple[str, ...]]
    ) -> list[JoinRecord | KeyError | ValueError]:
        """:meth:`decoded` of each record (read from the slice of the same index), or the KeyError / ValueError it
        raises; read at once (:func:`~driftline.streams.join_codec.decode_many`)."""
        out: list[JoinRecord | KeyError | ValueError] = [None] * len(raws)  # type: ignore[list-item]
        length, ttl = self.length_ms, self.ttl_ms
        blocks, others = decode_blocks(raws, layouts)
        for block in blocks:
            whole = len(block.positions) == len(out)  # every record of one block (the usual lookup)
            ks = slice_indices if whole else list(map(slice_indices.__getitem__, block.positions))
            if max(map(abs, ks)) * length < _EXACT_INT64:  # the usual: every expiry at once
                expires = (np.array(ks, dtype=np.int64) * length + block.deltas + ttl).tolist()
            else:
                expires = [k * length + delta + ttl for k, delta in zip(ks, block.deltas.tolist(), strict=True)]
            # each record's x is built from its row when read (JoinRecord.of_rows)
            records = JoinRecord.of_rows(block.predictions, block.scores, block.versions, expires, block.features)
            if whole:
                out = records  # type: ignore[assignment]
                continue
            for i, record in zip(block.positions, records, strict=True):
                out[i] = record
        for i in others:
            try:
                out[i] = self.decoded(raws[i], slice_indices[i], layouts)
            except (KeyError, ValueError) as exc:
                out[i] = exc
        return out

    def expires_seconds(self) -> int:
        """Seconds a bucket lives after its last write: the label TTL and one slice."""
        return math.ceil((self.ttl_ms + self.length_ms) / 1000)


class JoinStore:
    """Redis-backed join records, written by scorers, read and deleted by the learner."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        ttl_seconds: int,
        retry_seconds: float = RETRY_SECONDS,
        max_buffered: int = 200_000,
        linger: float = 0.0,
        linger_records: int = LINGER_RECORDS,
    ):
        self.client = client
        self.prefix = prefix
        self.slices = JoinSlices(ttl_seconds * 1000)
        self.retry_seconds = retry_seconds
        self.max_buffered = max_buffered
        #: Seconds the oldest buffered record waits for others before a write starts (unless ``linger_records``).
        self.linger, self.linger_records = linger, linger_records
        #: When the buffer last became non-empty (monotonic), and the timer that ends the linger, if any.
        self._since: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: (model, slice, event id, record) waiting for Redis
        self._buffer: collections.deque[tuple[str, int, str, bytes]] = collections.deque()
        self._flushing = asyncio.Lock()
        self._retry_at = 0.0
        #: Records ever put, and ever written to Redis (the buffer is a queue: the first ``stored`` are in Redis).
        self.appended = 0
        self.stored = 0
        #: The background write started by the last put (kept: the loop holds tasks only weakly).
        self._writer: asyncio.Task | None = None
        #: (model, slice) -> buckets of that slice (fixed once its first writer chose them)
        self._buckets: dict[tuple[str, int], int] = {}
        #: (model, layout digest) -> feature names; the ones this process has written to Redis
        self._layouts: dict[tuple[str, int], tuple[str, ...]] = {}
        self._layouts_written: set[tuple[str, int]] = set()
        #: model -> the slices holding its records as last listed (kept by :meth:`lookup` while they suffice)
        self._live: dict[str, list[int]] = {}

    @property
    def buffered(self) -> int:
        """Writes waiting for Redis to come back."""
        return len(self._buffer)

    @property
    def full(self) -> bool:
        """The buffer holds ``max_buffered`` records or more: the scorer must not consume until it drains."""
        return len(self._buffer) >= self.max_buffered

    # --- writes --------------------------------------------------------------------------------
    async def put_many(self, model: str, records: list[tuple[str, JoinRecord]]) -> None:
        """Store records (event_id, record) and wait for the write this started, if any; never raises: on Redis
        errors they are kept and retried.

        Only buffers while another write is waiting for Redis or ``retry_seconds`` after a failed one.
        """
        before = self._writer
        await self.put_scored(
            model,
            [event_id for event_id, _ in records],
            [r.x for _, r in records],
            [r.prediction for _, r in records],
            [r.probabilities for _, r in records],
            [r.score for _, r in records],
            [r.version for _, r in records],
            [r.expires_ms - self.slices.ttl_ms for _, r in records],
            [r.challenger for _, r in records],
        )
        self.write_in_background(now=True)
        if self._writer is not None and self._writer is not before:
            await asyncio.shield(self._writer)

    async def put_scored(
        self,
        model: str,
        event_ids: Sequence[str],
        rows: Sequence[dict[str, Any]] | None,
        predictions: Sequence[Any],
        probabilities: Sequence[dict[str, float] | None],
        scores: Sequence[Any],
        versions: Sequence[int] | int,
        event_ts: Sequence[int],
        challengers: Sequence[Any] | None = None,
        columns: FeatureColumns | None = None,
    ) -> None:
        """Buffer the records of a scored batch's columns (one version for all, or one each) and start writing them
        in the background unless a write is in flight (it takes them too) or ``retry_seconds`` after a failed one;
        with the batch's ``columns`` of numbers and none missing, the features of every record are packed at once.
        ``rows``: the prepared feature dicts, or None to build them from ``columns`` only if they are needed."""
        buffered = len(self._buffer)
        length, names_of = self.slices.length_ms, self._layouts
        shadows = challengers if challengers is not None else itertools.repeat(None)
        each_version = itertools.repeat(versions) if isinstance(versions, int) else versions
        blocks: Iterable[bytes | None] = itertools.repeat(None)
        if columns is not None and columns.numeric and not columns.categorical and len(columns):
            matrix = np.column_stack([columns.numeric[name] for name in columns.names])
            if not np.isnan(matrix).any():
                if challengers is None and isinstance(versions, int):  # the scorer's batch: every record at once
                    self._put_batch(
                        model,
                        event_ids,
                        matrix,
                        predictions,
                        probabilities,
                        scores,
                        versions,
                        event_ts,
                        tuple(columns.names),
                    )
                    self.write_in_background()
                    return
                blocks = float_blocks(matrix)
        if rows is None:
            if columns is None:
                raise ValueError("put_scored needs the rows or the columns of the batch")
            rows = columns.rows()
        last_names: tuple[str, ...] = ()
        digest = 0
        for event_id, x, prediction, proba, score, version, ts, shadow, block in zip(
            event_ids, rows, predictions, probabilities, scores, each_version, event_ts, shadows, blocks, strict=False
        ):
            names = tuple(x)
            if names != last_names:
                digest = layout_digest(names)
                names_of.setdefault((model, digest), names)
                last_names = names
            k = ts // length
            value = encode_record(
                () if block is not None else list(x.values()),
                prediction,
                proba,
                score,
                version,
                ts - k * length,
                shadow,
                names,
                block,
                digest,
            )
            self._buffer.append((model, k, event_id, value))
        self.appended += len(self._buffer) - buffered
        self.write_in_background()

    def _put_batch(
        self,
        model: str,
        event_ids: Sequence[str],
        matrix: np.ndarray,
        predictions: Sequence[Any],
        probabilities: Sequence[dict[str, float] | None],
        scores: Sequence[Any],
        version: int,
        event_ts: Sequence[int],
        names: tuple[str, ...],
    ) -> None:
        """Buffer the records of a batch of float features, one version and no challenger, encoded at once."""
        digest = layout_digest(names)
        self._layouts.setdefault((model, digest), names)
        ts = np.asarray(event_ts, dtype=np.int64)
        slices = ts // self.slices.length_ms
        values = encode_batch(
            matrix, predictions, probabilities, scores, version, ts - slices * self.slices.length_ms, names, digest
        )
        self._buffer.extend(zip(itertools.repeat(model), slices.tolist(), event_ids, values, strict=False))
        self.appended += len(values)

    def write_in_background(self, now: bool = False) -> None:
        """Start writing what is buffered unless a write is in flight (it takes these records too),
        ``retry_seconds`` after a failed one, or (unless ``now``) while the oldest record buffered has waited less
        than ``linger`` and fewer than ``linger_records`` are: a timer starts it when the linger ends. Never waits
        (the scorer's idle polls call it)."""
        JOIN_BUFFERED.set(len(self._buffer))
        writing = self._flushing.locked() or (self._writer is not None and not self._writer.done())
        if writing or time.monotonic() < self._retry_at:
            return
        if not now and self.linger > 0 and len(self._buffer) < self.linger_records:
            if not self._buffer:
                return
            clock = time.monotonic()
            if self._since is None:
                self._since = clock
            wait = self._since + self.linger - clock
            if wait > 0:
                if self._timer is None:
                    self._timer = asyncio.get_running_loop().call_later(wait, self._linger_over)
                return
        self._writer = asyncio.ensure_future(self.flush())

    def _linger_over(self) -> None:
        self._timer = None
        self.write_in_background()

    async def written(self) -> None:
        """Start writing what is buffered (no linger) unless a write is in flight or failed ``retry_seconds`` ago,
        and wait for the write in flight, if any: it takes every record buffered before it ends. Never raises."""
        self.write_in_background(now=True)
        if self._writer is not None:
            await asyncio.shield(self._writer)

    def mark(self) -> Callable[[], bool]:
        """A check that says True once every record put so far is stored in Redis.

        >>> store = JoinStore(aioredis.Redis(), "t:", ttl_seconds=60)
        >>> store.appended, store.stored = 10, 9
        >>> stored = store.mark()
        >>> stored(), (setattr(store, "stored", 10), stored())[1]
        (False, True)
        """
        upto = self.appended
        return lambda: self.stored >= upto

    async def flush(self) -> int:
        """Write the buffered records; never raises (on Redis errors they stay buffered). Returns how many are left.

        Started in the background by each put and by the scorer's idle polls (:meth:`write_in_background`), and
        awaited by a timer, the learner, and the scorer before a revoke and at stop, so that writes buffered during
        an outage reach Redis even when no event follows; one flush at a time.
        """
        async with self._flushing:
            while self._buffer:
                # records are only appended meanwhile: the first len(pending) are the ones written
                pending = list(itertools.islice(self._buffer, FLUSH_CHUNK))
                try:
                    await self._write(pending)
                except (redis.RedisError, OSError) as exc:
                    self._retry_at = time.monotonic() + self.retry_seconds
                    REDIS_ERRORS.labels("join_write").inc()
                    log.warning("join store unreachable, %d writes buffered: %r", len(self._buffer), exc)
                    break
                for _ in pending:
                    self._buffer.popleft()
                self.stored += len(pending)
            if not self._buffer:
                self._since = None  # the next record put starts the next linger
            JOIN_BUFFERED.set(len(self._buffer))
            return len(self._buffer)

    async def _write(self, pending: list[tuple[str, int, str, bytes]]) -> None:
        counts = collections.Counter(map(_SLICE_OF, pending))
        await self._choose_buckets([s for s in counts if s not in self._buckets])
        chosen = self._buckets  # JoinSlices.bucket of each record, from the batch's hashes
        by_bucket: dict[tuple[str, int, int], dict[str, bytes]] = collections.defaultdict(dict)
        for (model, k, event_id, value), hashed in zip(pending, event_hashes(map(_EVENT_ID, pending)), strict=True):
            by_bucket[model, k, hashed % chosen[model, k]][event_id] = value
        seconds = self.slices.expires_seconds()
        commands: list[tuple[Any, ...]] = [
            ("SET", keys.join_layout(self.prefix, model, digest), orjson.dumps(names))
            for (model, digest), names in self._layouts.items()
            if (model, digest) not in self._layouts_written
        ]
        for bucket, fields in by_bucket.items():
            key = keys.join_bucket(self.prefix, *bucket)
            commands += (("HSET", key, *itertools.chain.from_iterable(fields.items())), ("EXPIRE", key, seconds))
        for (model, k), count in counts.items():
            meta = keys.join_slice(self.prefix, model, k)
            commands += (
                ("HSETNX", meta, "buckets", self._buckets[model, k]),  # again: the hash may have expired meanwhile
                ("HINCRBY", meta, "events", count),
                ("EXPIRE", meta, seconds + math.ceil(self.slices.length_ms / 1000)),
                ("SADD", keys.join_slices(self.prefix, model), k),
            )
        await write_many(self.client, commands)  # one round trip, its replies read at once
        self._layouts_written.update(self._layouts)

    async def _choose_buckets(self, new: list[tuple[str, int]]) -> None:
        """Fix the buckets of slices this process writes first: the first writer's choice, from the events of the
        slice before (``HSETNX``), wins; every writer and reader then reads it."""
        if not new:
            return
        pipe = self.client.pipeline(transaction=False)
        for model, k in new:
            pipe.hget(keys.join_slice(self.prefix, model, k - 1), "events")
        before = await pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for (model, k), events in zip(new, before, strict=True):
            meta = keys.join_slice(self.prefix, model, k)
            chosen = self.slices.buckets_for(int(events)) if events is not None else DEFAULT_BUCKETS
            pipe.hsetnx(meta, "buckets", chosen)
            pipe.hget(meta, "buckets")
        answers = await pipe.execute()
        for i, key in enumerate(new):
            self._buckets[key] = int(answers[2 * i + 1])

    # --- reads ---------------------------------------------------------------------------------
    async def lookup(
        self, model: str, event_ids: Sequence[str], label_ts: Sequence[int]
    ) -> list[tuple[str, JoinRecord] | None]:
        """(bucket key, record) of each event (None where absent), looked up in the slices around its label's
        timestamp (nearest first); raises redis errors to the caller.

        The slices are the ones the lookup before listed: a batch whose labels are all found costs one round trip
        (its ``HMGET``s), not two, as long as no slice missing from that list could hold a record nearer a label
        than the one found (every label found in its own slice, the usual case). Otherwise (a label not found, or
        found farther away), the list is read again (``SMEMBERS``); if it holds a slice the old one did not, the
        batch is looked up again in the new list: the records found are the ones a lookup that read the list
        first finds."""
        return (await self.lookup_beside(model, event_ids, label_ts, ()))[0]

    async def lookup_beside(
        self, model: str, event_ids: Sequence[str], label_ts: Sequence[int], beside: Sequence[Sequence[Any]]
    ) -> tuple[list[tuple[str, JoinRecord] | None], list[Any]]:
        """:meth:`lookup`, with the read commands ``beside`` sent in its first exchange (the learner's read of the
        registry's current version: no round trip of its own); their replies as the parser reads them (see
        :func:`~driftline.streams.connections.read_many`)."""
        if not event_ids:
            return [], await read_many(self.client, beside)
        known = self._live.get(model)
        owns = list(map(self.slices.of, label_ts))
        live = known if known is not None else await self._live_slices(model)
        found, where, replies = await self._find(model, event_ids, owns, live, beside)
        if known is not None and not self._nearest(known, owns, where):
            live = await self._live_slices(model)
            if not set(live).issubset(known):  # a slice new since: from the list read now, as if read first
                found, _, _ = await self._find(model, event_ids, owns, live, ())
        return found, replies

    @staticmethod
    def _nearest(known: list[int], owns: list[int], where: list[int | None]) -> bool:
        """Whether no slice missing from ``known`` could hold a record nearer its label (in :meth:`JoinSlices.order`)
        than the slice ``where`` it was found (False for a label not found); ``owns``: each label's own slice.

        >>> JoinStore._nearest([4, 5], [5, 5, 5], [5, 4, 5]), JoinStore._nearest([4, 6], [5], [4])
        (True, False)
        >>> JoinStore._nearest([5, 6], [5], [None]), JoinStore._nearest([4, 5, 6], [5], [6])
        (False, True)
        """
        listed = set(known)
        for own, k in set(zip(owns, where, strict=True)):
            if k is None:
                return False
            distance = abs(own - k)  # nearer: any slice strictly closer, and the earlier one as close
            if k > own and own - distance not in listed:
                return False
            if not all(j in listed for j in range(own - distance + 1, own + distance)):
                return False
        return True

    async def _read_slice(
        self,
        model: str,
        k: int,
        buckets: int,
        event_ids: Sequence[str],
        hashes: list[int],
        beside: Sequence[Sequence[Any]],
    ) -> tuple[list[str], list[bytes | None], list[int], list[Any]]:
        """One ``HMGET`` per bucket of slice ``k`` (of ``buckets``) that ``event_ids`` (of :func:`event_hashes`
        ``hashes``) fall in, in one exchange after the commands ``beside``: the bucket key and the value (None:
        absent) of each event in bucket order, the position of each among ``event_ids``, and the replies of
        ``beside``. The events are grouped by bucket at once (a stable sort of their buckets), not one by one."""
        n = len(event_ids)
        placed = np.array(hashes, dtype=np.int64) % buckets
        by = np.argsort(placed, kind="stable")
        ordered = placed[by]
        cuts = (np.flatnonzero(ordered[1:] != ordered[:-1]) + 1).tolist()
        starts, ends = [0, *cuts], [*cuts, n]
        positions = by.tolist()
        ids = list(map(event_ids.__getitem__, positions))
        prefix = self.prefix
        named = [keys.join_bucket(prefix, model, k, bucket) for bucket in ordered[starts].tolist()]
        commands = [("HMGET", key, *ids[start:end]) for key, start, end in zip(named, starts, ends, strict=True)]
        replies = await read_many(self.client, [*beside, *commands])
        answers, replies = replies[: len(beside)], replies[len(beside) :]
        values = list(itertools.chain.from_iterable(replies))
        if len(values) != n:
            raise redis.ResponseError(f"HMGET of {n} fields answered {len(values)} values")
        sizes = map(operator.sub, ends, starts)
        return list(itertools.chain.from_iterable(map(itertools.repeat, named, sizes))), values, positions, answers

    async def _find(
        self,
        model: str,
        event_ids: Sequence[str],
        owns: list[int],
        live: list[int],
        beside: Sequence[Sequence[Any]],
    ) -> tuple[list[tuple[str, JoinRecord] | None], list[int | None], list[Any]]:
        """:meth:`lookup_beside` in the ``live`` slices (their buckets known), of labels in slices ``owns``: the
        records, the slice each was found in, the replies of ``beside``."""
        n = len(event_ids)
        found: list[tuple[str, JoinRecord] | None] = [None] * n
        raw: dict[int, tuple[str, int, bytes]] = {}
        order = self.slices.order_around
        waiting = list(range(n))
        prefix = self.prefix  # JoinSlices.bucket of each event from its hash, computed once
        hashes = event_hashes(event_ids) if live else []
        buckets = {k: self._buckets[model, k] for k in live}
        # sent with the first exchange, their replies taken off its front
        first: list[Sequence[Any]] = list(beside)
        answers: list[Any] = []
        tried = 0  # the attempts made (below: the usual batch's first one)
        if live and n and owns.count(owns[0]) == n:  # the usual batch: every label's own slice alike
            k = order(live, owns[0])[0]
            named, values, positions, answers = await self._read_slice(model, k, buckets[k], event_ids, hashes, first)
            first, tried = [], 1
            if None not in values:  # every record found in its label's own slice, or the nearest one
                records = self.slices.decoded_many(values, [k] * n, self._names(model))
                if set(map(type, records)) == {JoinRecord}:
                    for _ in map(found.__setitem__, positions, zip(named, records, strict=True)):
                        pass
                    return found, [k] * n, answers
            for i, key, value in zip(positions, named, values, strict=True):
                if value is not None:
                    raw[i] = (key, k, value)
            waiting = [i for i in waiting if i not in raw]
        orders: dict[int, list[int]] = {}  # by the label's own slice: labels of a batch share a few
        candidates = [orders.get(own) or orders.setdefault(own, order(live, own)) for own in owns] if waiting else []
        for attempt in range(tried, len(live)):
            by_bucket: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
            for i in waiting:
                k = candidates[i][attempt]
                by_bucket[k, hashes[i] % buckets[k]].append(i)
            if not by_bucket:
                break
            bucket_keys = [keys.join_bucket(prefix, model, k, bucket) for k, bucket in by_bucket]  # one per bucket
            commands = [
                ("HMGET", key, *[event_ids[i] for i in items])
                for key, items in zip(bucket_keys, by_bucket.values(), strict=True)
            ]
            replies = await read_many(self.client, first + commands)
            if first:
                answers, replies, first = replies[: len(first)], replies[len(first) :], []
            for key, (k, _), items, values in zip(bucket_keys, by_bucket, by_bucket.values(), replies, strict=True):
                for i, value in zip(items, values, strict=True):
                    if value is not None:
                        raw[i] = (key, k, value)
            waiting = [i for i in waiting if i not in raw]
        layouts, unknown = self._names(model), []
        read = list(raw.values())
        records = self.slices.decoded_many([value for _, _, value in read], [k for _, k, _ in read], layouts)
        for i, (key, _, _), record in zip(raw, read, records, strict=True):
            if isinstance(record, KeyError):  # a layout not read yet: read below, then decoded again
                unknown.append(i)
            elif isinstance(record, ValueError):
                log.error("join record of %r in %s unreadable, treated as absent", event_ids[i], key)
            else:
                found[i] = key, record
        if unknown:
            await self._read_layouts(model, [record_layout(raw[i][2]) for i in unknown])
            layouts = self._names(model)
            for i in unknown:
                key, k, value = raw[i]
                record = self.slices.record(value, k, layouts)
                if record is None:
                    log.error(
                        "join record of %r in %s unreadable (layout unknown?), treated as absent", event_ids[i], key
                    )
                    continue
                found[i] = key, record
        if first:  # no exchange above: no slice, or no label
            answers = await read_many(self.client, first)
        where: list[int | None] = [None] * len(event_ids)
        for i, (_, k, _) in raw.items():
            if found[i] is not None:
                where[i] = k
        return found, where, answers

    async def get_many(self, model: str, event_ids: Sequence[str], label_ts: Sequence[int]) -> list[JoinRecord | None]:
        """The join records of ``event_ids`` (None where absent) for labels at ``label_ts``."""
        return [f[1] if f is not None else None for f in await self.lookup(model, event_ids, label_ts)]

    def _names(self, model: str) -> dict[int, tuple[str, ...]]:
        return {digest: names for (m, digest), names in self._layouts.items() if m == model}

    async def _live_slices(self, model: str) -> list[int]:
        """The slices of ``model`` that hold records (their buckets known); forgets the ones that expired."""
        listed = sorted(int(k) for k in await self.client.smembers(keys.join_slices(self.prefix, model)))
        unknown = [k for k in listed if (model, k) not in self._buckets]
        if unknown:
            pipe = self.client.pipeline(transaction=False)
            for k in unknown:
                pipe.hget(keys.join_slice(self.prefix, model, k), "buckets")
            gone = []
            for k, count in zip(unknown, await pipe.execute(), strict=True):
                if count is None:
                    gone.append(k)
                else:
                    self._buckets[model, k] = int(count)
            if gone:
                await self.client.srem(keys.join_slices(self.prefix, model), *gone)
        live = self._live[model] = [k for k in listed if (model, k) in self._buckets]
        return live

    async def _read_layouts(self, model: str, digests: list[int]) -> None:
        unknown = sorted({d for d in digests if (model, d) not in self._layouts})
        if not unknown:
            return
        pipe = self.client.pipeline(transaction=False)
        for digest in unknown:
            pipe.get(keys.join_layout(self.prefix, model, digest))
        for digest, names in zip(unknown, await pipe.execute(), strict=True):
            if names is not None:
                self._layouts[model, digest] = tuple(orjson.loads(names))
                self._layouts_written.add((model, digest))

    # --- deletes -------------------------------------------------------------------------------
    async def delete(self, learned: Sequence[tuple[str, str]]) -> None:
        """Delete the records of learned labels, ``(bucket key, event id)`` each (once their checkpoint is
        written: a label replayed after a crash must still find its record), one ``HDEL`` per bucket in one
        exchange (:func:`~driftline.streams.connections.write_many`); raises redis errors."""
        by_key: dict[str, list[str]] = collections.defaultdict(list)
        for key, event_id in learned:
            by_key[key].append(event_id)
        await write_many(self.client, [("HDEL", key, *event_ids) for key, event_ids in by_key.items()])


def find_join(
    client: redis.Redis, prefix: str, ttl_seconds: int, model: str, event_id: str, at_ms: int
) -> JoinRecord | None:
    """The join record of one event (``driftline trace``), looked up around ``at_ms`` (its event's or label's time)."""
    slices = JoinSlices(ttl_seconds * 1000)
    listed = [int(k) for k in client.smembers(keys.join_slices(prefix, model))]
    for k in slices.order(listed, at_ms) if at_ms is not None else listed:
        buckets = client.hget(keys.join_slice(prefix, model, k), "buckets")
        if buckets is None:
            continue
        raw = client.hget(keys.join_bucket(prefix, model, k, slices.bucket(int(buckets), event_id)), event_id)
        if raw is None:
            continue
        try:
            digest = record_layout(raw)
        except ValueError:  # as the learner does: an unreadable record is absent
            log.error("join record of %r in slice %s unreadable, treated as absent", event_id, k)
            return None
        names = client.get(keys.join_layout(prefix, model, digest))
        return slices.record(raw, k, {digest: tuple(orjson.loads(names))} if names is not None else {})
    return None
