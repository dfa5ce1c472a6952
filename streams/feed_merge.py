"""One model's monitor feeds merged in event-time order under a watermark (Flink's watermarks, Kafka Streams'
KIP-353 across workers).

Every worker's scorer sends what it scored of a model, with its progress per ``events`` partition it owns
(:mod:`driftline.streams.monitor_feed`). :class:`FeedMerger` buffers the events per source partition and releases
them in event-time order: everything up to the *watermark*, the lowest event time handed over up to among the
partitions that may still hold older events. A partition whose scorer handed over everything up to its end offset
(``ends``, read from the broker by the caller when it releases) is not waited for (its events are released as they
come); one never heard of is, unless it is empty (the partitions of ``events`` are known from the start). Within a
partition events are released in offset order, ranked by the running maximum of their times (an event older than
one before it in its partition keeps its place). Events are deduplicated by
source (partition, offset): a partition re-read after a rebalance or a restart brings nothing twice. At most
``max_buffered`` events wait: beyond, the oldest are released anyway. Events released older than one released
before them are counted (``out_of_order``).

The state the next owner needs (what was monitored per partition, the watermark's inputs, the feed offset to read
again from) is pickled with the monitor: buffered events are not, they are read again from :attr:`resume_offset`.

Pure: no Kafka.

>>> import numpy as np
>>> from driftline.models.feature_columns import FeatureColumns
>>> def feed(partition, offsets, ts):
...     n = len(ts)
...     columns = FeatureColumns(["x"], {"x": np.array(ts, dtype=float)}, {}, list(range(n)))
...     return FeedBatch("m", 1, [partition] * n, offsets, ts, [f"p{partition}o{o}" for o in offsets], columns,
...                      [0] * n, [None] * n, progress={partition: (max(ts), offsets[-1] + 1)})
>>> merger = FeedMerger(partitions=[0, 1])
>>> merger.add(0, feed(0, [0, 1, 2], [10, 30, 50]))
>>> merger.release({0: 5, 1: 3}).event_ids  # partition 1 may still hold older events
[]
>>> merger.add(1, feed(1, [0, 1], [20, 40]))
>>> merger.release({0: 5, 1: 3}).event_ids  # up to the watermark, 40
['p0o0', 'p1o0', 'p0o1', 'p1o1']
>>> merger.add(2, feed(1, [1, 2], [40, 60]))  # offset 1 again: dropped
>>> merger.release({0: 5, 1: 3}).event_ids, merger.duplicates  # partition 1 is at its end: only 0 is waited for
(['p0o2'], 1)
>>> merger.add(3, feed(0, [3, 4], [70, 80]))
>>> merger.release({0: 5, 1: 3}).event_ids, merger.resume_offset
(['p1o2', 'p0o3', 'p0o4'], 4)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.models.feature_columns import FeatureColumns
from driftline.models.probability_rows import ProbabilityRows
from driftline.streams.monitor_feed import DIRECT, FeedBatch

__all__ = ["FeedMerger", "Released", "Run"]

#: Events a model's merger holds at most while it waits for a partition (then the oldest go anyway).
MAX_BUFFERED = 50_000
#: Events in a message (or a release) up to which the merger's bookkeeping runs event by event, not in NumPy.
FEW = 64
#: Messages' parts the buffer holds before they are joined into one (while the watermark holds them back).
COMPACT_PARTS = 64
_NEVER = -(2**62)
_FOREVER = 2**62


@dataclass
class Run:
    """Consecutive released events served by one version: what one ``Monitor.observe_events`` call takes."""

    version: int
    event_ids: list[str]
    ts: list[int]
    columns: FeatureColumns
    predictions: list[Any]
    probabilities: Sequence[dict[Any, float] | None]


@dataclass
class Released:
    """What :meth:`FeedMerger.release` gives: runs of events in event-time order, and invalid events' reasons."""

    runs: list[Run] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    @property
    def event_ids(self) -> list[str]:
        return [e for run in self.runs for e in run.event_ids]


@dataclass
class _Rows:
    """Buffered events as columns, each with its rank (running maximum of the times in its partition) and the
    offset of the feed message that brought it."""

    partitions: np.ndarray
    offsets: np.ndarray
    ts: np.ndarray
    rank: np.ndarray
    message: np.ndarray
    versions: np.ndarray
    event_ids: list[str]
    columns: FeatureColumns
    predictions: list[Any]
    probabilities: Sequence[dict[Any, float] | None]  # ProbabilityRows while every part's are

    def __len__(self) -> int:
        return len(self.event_ids)

    def take(self, index: np.ndarray) -> _Rows:
        positions = index.tolist()
        return _Rows(
            self.partitions[index],
            self.offsets[index],
            self.ts[index],
            self.rank[index],
            self.message[index],
            self.versions[index],
            [self.event_ids[i] for i in positions],
            self.columns.take(positions),
            [self.predictions[i] for i in positions],
            _take(self.probabilities, positions),
        )

    @staticmethod
    def concat(parts: list[_Rows]) -> _Rows:
        if len(parts) == 1:
            return parts[0]
        return _Rows(
            *(np.concatenate([getattr(p, k) for p in parts]) for k in _ARRAYS),
            [e for p in parts for e in p.event_ids],
            _concat_columns([p.columns for p in parts]),
            [v for p in parts for v in p.predictions],
            _concat_probabilities([p.probabilities for p in parts]),
        )


_ARRAYS = ("partitions", "offsets", "ts", "rank", "message", "versions")


class FeedMerger:
    """The feeds of one model, merged (see the module docstring)."""

    #: Events up to which a message's (or a release's) bookkeeping runs event by event (see :data:`FEW`).
    few = FEW
    #: The lowest rank buffered (a merger restored from a checkpoint written before it existed buffers nothing).
    _lowest = _FOREVER

    def __init__(self, partitions: Iterable[int] = (), max_buffered: int = MAX_BUFFERED):
        self.max_buffered = max_buffered
        #: The ``events`` partitions: each is waited for until its scorer handed over everything up to its end.
        self.partitions: set[int] = set(partitions)
        #: Per partition, the event time handed over up to (rows and progress reports).
        self.high: dict[int, int] = {}
        #: Per partition, the rank of the last event added, and of the last released (ranks are running maxima).
        self.ranked: dict[int, int] = {}
        self.released_rank: dict[int, int] = {}
        #: Per partition, the offset after the last record its scorer handed over.
        self.handed: dict[int, int] = {}
        #: Per partition, the highest offset released to the monitor (what a restart must not monitor again).
        self.monitored: dict[int, int] = {}
        #: Per partition, the highest offset buffered or released (incoming events at or below it are duplicates).
        self.added: dict[int, int] = {}
        #: Per partition, the highest offset of an invalid event counted.
        self.invalid_seen: dict[int, int] = {}
        #: The offset after the last feed message added.
        self.next_message = 0
        #: Event time of the latest event released (the monitor's clock).
        self.clock = _NEVER
        self.duplicates = self.out_of_order = self.forced = 0
        self._buffer: list[_Rows] = []
        self._invalid: list[str] = []
        #: The lowest rank buffered (_FOREVER: none): a release whose watermark is below it has nothing to sort.
        self._lowest = _FOREVER

    @property
    def buffered(self) -> int:
        return sum(map(len, self._buffer))

    @property
    def resume_offset(self) -> int:
        """The feed offset to read again from after a restart: the oldest message with events still buffered."""
        messages = [int(rows.message.min()) for rows in self._buffer if len(rows)]
        return min(messages, default=self.next_message)

    def watermark(self, ends: Mapping[int, int]) -> int | None:
        """The event time up to which every event has come (None: no partition is waited for), given the end
        offset of each partition (one missing from ``ends`` is waited for)."""
        self.partitions.update(ends)
        waiting = [p for p in self.partitions if self.handed.get(p, 0) < ends.get(p, _FOREVER)]
        return min((self.high.get(p, _NEVER) for p in waiting), default=None)

    def add(self, message: int, feed: FeedBatch) -> None:
        """Buffer the events of the feed message at offset ``message`` (duplicates dropped) and take its progress."""
        self.next_message = max(self.next_message, message + 1)
        for partition, offset, reason in feed.invalid:
            if partition == DIRECT or offset > self.invalid_seen.get(partition, -1):
                self._invalid.append(reason)
                self.invalid_seen[partition] = max(offset, self.invalid_seen.get(partition, -1))
        n = len(feed)
        if n:
            self._buffer_rows(message, feed, n)
        for partition, (ts, offset) in feed.progress.items():
            if partition != DIRECT:
                self.partitions.add(partition)
                self.high[partition] = max(ts, self.high.get(partition, _NEVER))
                self.handed[partition] = max(offset, self.handed.get(partition, 0))

    def _buffer_rows(self, message: int, feed: FeedBatch, n: int) -> None:
        partitions = np.asarray(feed.partitions, dtype=np.int64)
        offsets = np.asarray(feed.offsets, dtype=np.int64)
        ts = np.asarray(feed.ts, dtype=np.int64)
        keep, rank = (self._ranks_few if n <= self.few else self._ranks)(partitions, offsets, ts)
        self.duplicates += int(n - keep.sum())
        if not keep.any():
            return
        rows = _Rows(
            partitions,
            offsets,
            ts,
            rank,
            np.full(n, message, dtype=np.int64),
            np.full(n, -1 if feed.version is None else feed.version, dtype=np.int64),
            feed.event_ids,
            feed.columns,
            list(feed.predictions),
            feed.probabilities if isinstance(feed.probabilities, ProbabilityRows) else list(feed.probabilities),
        )
        rows = rows if keep.all() else rows.take(np.flatnonzero(keep))
        self._lowest = min(self._lowest, int(rows.rank.min()))
        self._buffer.append(rows)
        if len(self._buffer) > COMPACT_PARTS:  # many messages waiting for the watermark: one part again
            self._buffer = [_Rows.concat(self._buffer)]

    def _ranks(self, partitions: np.ndarray, offsets: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which of a message's events are new (offset above what its partition brought before), and each new
        one's rank; takes what they bring (offsets, ranks, event times handed over up to)."""
        keep = np.ones(len(ts), dtype=bool)
        rank = ts.copy()
        for partition in np.unique(partitions).tolist():
            mine = partitions == partition
            if partition == DIRECT:
                continue
            keep[mine] = offsets[mine] > self.added.get(partition, -1)
            kept = mine & keep
            if kept.any():
                self.added[partition] = int(offsets[kept].max())
                start = self.ranked.get(partition, _NEVER)
                rank[kept] = np.maximum.accumulate(np.maximum(ts[kept], start))
                self.ranked[partition] = int(rank[kept][-1])
                self.high[partition] = max(self.ranked[partition], self.high.get(partition, _NEVER))
                self.partitions.add(partition)
        return keep, rank

    def _ranks_few(self, partitions: np.ndarray, offsets: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_ranks` event by event: for a message of a few events (at 1,000 events/s a scorer's messages
        hold a few dozen), NumPy's cost per call was most of it."""
        top: dict[int, int] = {}  # self.added and self.ranked move only after the loop, as in _ranks
        running: dict[int, int] = {}
        keep, rank = [], []
        for partition, offset, t in zip(partitions.tolist(), offsets.tolist(), ts.tolist(), strict=True):
            if partition != DIRECT:
                if offset <= self.added.get(partition, -1):
                    keep.append(False)
                    rank.append(t)
                    continue
                t = running[partition] = max(t, running.get(partition, self.ranked.get(partition, _NEVER)))
                top[partition] = max(offset, top.get(partition, offset))
            keep.append(True)
            rank.append(t)
        for partition, last in running.items():
            self.added[partition], self.ranked[partition] = top[partition], last
            self.high[partition] = max(last, self.high.get(partition, _NEVER))
            self.partitions.add(partition)
        return np.array(keep, dtype=bool), np.array(rank, dtype=np.int64)

    def release(self, ends: Mapping[int, int]) -> Released:
        """The events up to the watermark in event-time order (the oldest beyond ``max_buffered`` too), and the
        invalid events counted since the last release; ``ends``: the end offset of each ``events`` partition."""
        out = Released(invalid=self._invalid)
        self._invalid = []
        if not self._buffer:
            return out
        mark = self.watermark(ends)
        if mark is not None and self.buffered <= self.max_buffered:
            if mark < self._lowest:
                return out  # nothing due: the buffer is left as it is
            taken = self._take_due(mark)
        else:  # everything due, or the oldest beyond max_buffered forced out
            rows = _Rows.concat(self._buffer)
            order = np.lexsort((rows.offsets, rows.partitions, rows.rank))
            due = len(order) if mark is None else int(np.searchsorted(rows.rank[order], mark, side="right"))
            if len(order) - due > self.max_buffered:
                self.forced += len(order) - due - self.max_buffered
                due = len(order) - self.max_buffered
            rest = order[due:]
            in_order = due == len(order) and bool((order[1:] > order[:-1]).all())
            taken = rows if in_order else rows.take(order[:due])
            self._buffer = [rows.take(np.sort(rest))] if len(rest) else []
        self._lowest = min((int(rows.rank.min()) for rows in self._buffer), default=_FOREVER)
        self._note_released(taken)
        out.runs = _runs(taken)
        return out

    def _take_due(self, mark: int) -> _Rows:
        """Take the buffered events ranked up to ``mark`` (some are) out of the buffer, in release order. Only the
        parts holding some are split: the others stay as they are, so events held back message after message (a
        partition's events older than its latest, behind a watermark that is not moving) are not copied and sorted
        again at every release (measured in `bench peers`' paced stretch: 3,600 waiting, 1.2 ms a feed message,
        more than scoring the events)."""
        due_parts, rest = [], []
        for rows in self._buffer:
            due = rows.rank <= mark
            if not due.any():
                rest.append(rows)
            elif due.all():
                due_parts.append(rows)
            else:
                due_parts.append(rows.take(np.flatnonzero(due)))
                rest.append(rows.take(np.flatnonzero(~due)))
        self._buffer = rest
        rows = _Rows.concat(due_parts)
        order = np.lexsort((rows.offsets, rows.partitions, rows.rank))
        return rows if bool((order[1:] > order[:-1]).all()) else rows.take(order)

    def _note_released(self, taken: _Rows) -> None:
        ts = taken.ts
        before = np.maximum.accumulate(np.concatenate(([self.clock], ts)))[:-1]
        self.out_of_order += int((ts < before).sum())
        self.clock = max(self.clock, int(ts.max()))
        if len(ts) <= self.few:
            offsets: dict[int, int] = {}
            ranks: dict[int, int] = {}
            for partition, offset, rank in zip(
                taken.partitions.tolist(), taken.offsets.tolist(), taken.rank.tolist(), strict=True
            ):
                offsets[partition] = max(offset, offsets.get(partition, offset))
                ranks[partition] = max(rank, ranks.get(partition, rank))
            maxima = zip(offsets, offsets.values(), ranks.values(), strict=True)
        else:
            maxima = zip(*_group_maxima(taken.partitions, taken.offsets, taken.rank), strict=True)
        for partition, offset, rank in maxima:
            if partition != DIRECT:
                self.monitored[partition] = max(offset, self.monitored.get(partition, -1))
                self.released_rank[partition] = rank

    def __getstate__(self) -> dict[str, Any]:
        """What a checkpoint keeps: buffered events are read again from :attr:`resume_offset`."""
        state = dict(self.__dict__)
        state["next_message"] = self.resume_offset
        state["added"] = dict(self.monitored)
        state["ranked"] = dict(self.released_rank)
        waiting = {int(p) for rows in self._buffer for p in np.unique(rows.partitions).tolist()}
        # a partition with events buffered: its time comes back with them (until then, what was released)
        state["high"] = {p: self.released_rank.get(p, _NEVER) if p in waiting else t for p, t in self.high.items()}
        state["_buffer"], state["_invalid"], state["_lowest"] = [], [], _FOREVER
        return state


def _runs(rows: _Rows) -> list[Run]:
    """``rows`` cut where the served version changes."""
    versions = rows.versions
    cuts = [0, *(np.flatnonzero(versions[1:] != versions[:-1]) + 1).tolist(), len(rows)]
    out = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        part = rows if (a, b) == (0, len(rows)) else rows.take(np.arange(a, b))
        out.append(
            Run(
                int(versions[a]),
                part.event_ids,
                part.ts.tolist(),
                part.columns,
                part.predictions,
                part.probabilities,
            )
        )
    return out


def _take(probabilities: Sequence[dict[Any, float] | None], positions: list[int]) -> Sequence[Any]:
    if isinstance(probabilities, ProbabilityRows):
        return probabilities.take(positions)
    return [probabilities[i] for i in positions]


def _concat_probabilities(parts: list[Sequence[dict[Any, float] | None]]) -> Sequence[Any]:
    """The parts one after the other: one matrix while every part is one of the same classes, else a list."""
    first = parts[0]
    if isinstance(first, ProbabilityRows) and all(
        isinstance(p, ProbabilityRows) and p.classes == first.classes for p in parts
    ):
        return ProbabilityRows.concat(parts)  # type: ignore[arg-type]
    return [v for p in parts for v in p]


def _concat_columns(parts: list[FeatureColumns]) -> FeatureColumns:
    """The rows of ``parts`` one after the other; a feature a part lacks is missing in its rows (NaN or None)."""
    first = parts[0]
    if all(
        p.names == first.names
        and p.numeric.keys() == first.numeric.keys()
        and p.categorical.keys() == first.categorical.keys()
        for p in parts
    ):  # the common case, one schema: no column to fill
        return FeatureColumns.concat(parts)
    names = list(dict.fromkeys(name for part in parts for name in part.names))
    numeric_names = list(dict.fromkeys(name for part in parts for name in part.numeric))
    categorical_names = list(dict.fromkeys(name for part in parts for name in part.categorical))
    numeric = {
        name: np.concatenate([p.numeric[name] if name in p.numeric else np.full(len(p), np.nan) for p in parts])
        for name in numeric_names
    }
    categorical = {
        name: [v for p in parts for v in (p.categorical[name] if name in p.categorical else [None] * len(p))]
        for name in categorical_names
    }
    return FeatureColumns(names, numeric, categorical, list(range(sum(map(len, parts)))))


def _group_maxima(partitions: np.ndarray, *columns: np.ndarray) -> tuple[list[int], ...]:
    """The partitions of ``partitions`` (ascending) and, for each, the maximum of each of ``columns`` over its
    events.

    >>> _group_maxima(np.array([2, 0, 2]), np.array([5, 1, 9]), np.array([7, 3, 4]))
    ([0, 2], [1, 9], [3, 7])
    """
    order = np.argsort(partitions, kind="stable")
    ordered = partitions[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    return (ordered[starts].tolist(), *(np.maximum.reduceat(c[order], starts).tolist() for c in columns))
