"""Timestamp-synchronised consumption of several partitions (Kafka Streams' KIP-353): records in time order.

A consumer reading a backlog of 4 partitions gets whole runs of one partition, then of the next, so what it
hands on jumps back and forth in time, and a monitor's windows mix events from before and after a change.
:class:`EventTimeMerger` buffers what was fetched per partition and hands records over in timestamp order: the
next record is always the head with the lowest timestamp, and it is taken only while every assigned partition
that may still have older records has something buffered (a partition caught up with its high watermark, or idle
for ``idle_polls`` fetches that brought nothing at all, is not waited for). A partition with ``max_buffered``
records buffered should be paused (:meth:`full`) until the others catch up. The time of a record is ``time_of``
of it, read once when it is buffered: by default its Kafka timestamp; the scorer passes :func:`event_time`, the
event's own ``ts`` (a producer's clock or a replay's speed then do not change the order).

Pure: no Kafka. Records need ``.offset`` (and ``.timestamp`` or a ``time_of``); partitions are any hashable keys.

Examples
--------
>>> from collections import namedtuple
>>> R = namedtuple("R", "timestamp offset")
>>> merger = EventTimeMerger(max_buffered=10, idle_polls=2)
>>> merger.add({"p0": [R(1, 0), R(4, 1), R(9, 2)], "p1": [R(2, 0), R(3, 1)]})
>>> [(tp, r.timestamp) for tp, r in merger.take({"p0", "p1"}, max_records=10)]  # p1 may still have 5..8
[('p0', 1), ('p1', 2), ('p1', 3)]
>>> merger.add({"p1": [R(8, 2)]})
>>> [r.timestamp for _, r in merger.take({"p0", "p1"}, 10)]
[4, 8]
>>> merger.take({"p0", "p1"}, 10, caught_up={"p1"})  # nothing more in p1: p0 goes on
[('p0', R(timestamp=9, offset=2))]
"""

from __future__ import annotations

import contextlib
import heapq
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import orjson

from driftline.contract.records import MAX_TS_MS, epoch_ms

__all__ = ["DECODED", "EventTimeMerger", "decoded_value", "event_time", "event_times", "kafka_timestamp"]


#: The attribute of a record that holds its value as decoded by :func:`event_time` (the stage reads it instead of
#: decoding the message again).
DECODED = "driftline_decoded"


def decoded_value(record: Any) -> Any:
    """The value :func:`event_time` decoded for ``record``, or None (not decoded, or not JSON)."""
    return getattr(record, DECODED, None)


def event_time(record: Any) -> int:
    """The event time of a record of ``events``: its value's ``ts`` (epoch ms or ISO-8601), or its Kafka timestamp
    when the value has none that :func:`~driftline.contract.records.epoch_ms` accepts (such an event is
    dead-lettered by the scorer anyway; here it only needs a place in the order). The decoded value is kept on a
    record that takes attributes (:func:`decoded_value`): the scorer decodes each message once.

    >>> from collections import namedtuple
    >>> R = namedtuple("R", "timestamp offset value")
    >>> event_time(R(5, 0, b'{"ts": "2023-11-14T22:13:20Z", "features": {"ts": 1}}')), event_time(R(5, 0, b"[1"))
    (1700000000000, 5)
    """
    try:
        value = orjson.loads(record.value)
        with contextlib.suppress(AttributeError):  # an immutable record: the stage decodes it again
            setattr(record, DECODED, value)
        return epoch_ms(value["ts"])
    except Exception:  # noqa: BLE001 - any value a producer can send: not JSON, no ts, a ts of no time
        return int(record.timestamp)


def event_times(records: Sequence[Any]) -> list[int]:
    """:func:`event_time` of each of ``records``, in one pass when every value is a JSON object whose ``ts`` is an
    epoch-ms int in range (the common case; the decoded values are kept the same way); else record by record.

    >>> from collections import namedtuple
    >>> R = namedtuple("R", "timestamp offset value")
    >>> event_times([R(5, 0, b'{"ts": 7}'), R(6, 1, b'{"ts": 9}')]), event_times([R(5, 0, b'{"ts": 7}'), R(6, 1, b"[")])
    ([7, 9], [7, 6])
    """
    try:
        values = [orjson.loads(record.value) for record in records]
        times = [value["ts"] for value in values]
    except Exception:  # noqa: BLE001 - a value that is no JSON object with a ts: each record decides alone
        return [event_time(record) for record in records]
    if times and (set(map(type, times)) != {int} or min(times) < 0 or max(times) > MAX_TS_MS):
        return [event_time(record) for record in records]  # a ts epoch_ms reads otherwise or refuses
    with contextlib.suppress(AttributeError):  # immutable records: the stage decodes them again
        for record, value in zip(records, values, strict=True):
            setattr(record, DECODED, value)
    return times


def kafka_timestamp(record: Any) -> int:
    """The record's Kafka timestamp (the producer's create time, or the broker's append time)."""
    return int(record.timestamp)


class EventTimeMerger:
    """Per-partition buffers handed over in time order (see the module docstring)."""

    def __init__(
        self,
        max_buffered: int = 2000,
        idle_polls: int = 3,
        time_of: Callable[[Any], int] = kafka_timestamp,
        times_of: Callable[[Sequence[Any]], Iterable[int]] | None = None,
    ):
        self.max_buffered, self.idle_polls, self.time_of = max_buffered, idle_polls, time_of
        #: The times of a fetch's records at once (the same as ``time_of`` of each; default: ``time_of`` of each).
        self.times_of = times_of
        #: Per partition, ``(time, record)`` pairs in offset order.
        self.buffers: dict[Hashable, deque[tuple[int, Any]]] = {}
        #: Offset after the last record fetched, per partition (caught up once it reaches the high watermark).
        self.next_offset: dict[Hashable, int] = {}
        self._empty_polls: dict[Hashable, int] = {}

    @property
    def buffered(self) -> int:
        """Records waiting."""
        return sum(len(b) for b in self.buffers.values())

    def add(self, fetched: Mapping[Hashable, Sequence[Any]], polled: Iterable[Hashable] = ()) -> None:
        """Buffer the records of one fetch; ``polled`` are the partitions it asked for. A fetch that brought
        nothing at all is an idle poll of each of them (one that brought records of others says nothing)."""
        empty = True
        for tp, records in fetched.items():
            if records:
                empty = False
                times = self.times_of(records) if self.times_of is not None else map(self.time_of, records)
                self.buffers.setdefault(tp, deque()).extend(zip(times, records, strict=False))
                self.next_offset[tp] = records[-1].offset + 1
                self._empty_polls[tp] = 0
        if empty:
            for tp in polled:
                self._empty_polls[tp] = self._empty_polls.get(tp, 0) + 1

    def full(self, tp: Hashable) -> bool:
        """Partition ``tp`` has ``max_buffered`` records waiting: pause it until the others catch up."""
        buffer = self.buffers.get(tp)
        return buffer is not None and len(buffer) >= self.max_buffered

    def _waiting(self, assigned: set[Hashable], caught_up: Iterable[Hashable]) -> set[Hashable]:
        """The partitions of ``assigned`` that may still hold older records: neither caught up nor idle."""
        done = set(caught_up) | {tp for tp in assigned if self._empty_polls.get(tp, 0) >= self.idle_polls}
        return {tp for tp in assigned if tp not in done}

    def ready(self, assigned: Iterable[Hashable], caught_up: Iterable[Hashable] = ()) -> bool:
        """:meth:`take` would hand something over now (without another fetch).

        >>> from collections import namedtuple
        >>> R = namedtuple("R", "timestamp offset")
        >>> merger = EventTimeMerger()
        >>> merger.add({"p0": [R(1, 0)]})
        >>> merger.ready({"p0", "p1"}), merger.ready({"p0", "p1"}, caught_up={"p1"}), merger.ready({"p0"})
        (False, True, True)
        """
        assigned = set(assigned)
        return any(self.buffers.get(tp) for tp in assigned) and all(
            self.buffers.get(tp) for tp in self._waiting(assigned, caught_up)
        )

    def take(
        self, assigned: Iterable[Hashable], max_records: int, caught_up: Iterable[Hashable] = ()
    ) -> list[tuple[Hashable, Any]]:
        """Up to ``max_records`` ``(partition, record)`` pairs in timestamp order, taken while every partition of
        ``assigned`` that is neither caught up nor idle has records buffered."""
        assigned = set(assigned)
        waiting = self._waiting(assigned, caught_up)
        heap = [(b[0][0], b[0][1].offset, i, tp) for i, (tp, b) in enumerate(self.buffers.items()) if b]
        heapq.heapify(heap)
        order = {tp: i for i, tp in enumerate(self.buffers)}
        out: list[tuple[Hashable, Any]] = []
        if any(not self.buffers.get(tp) for tp in waiting):
            return out  # a partition that may hold older records has none buffered: wait for it
        while heap and len(out) < max_records:
            _, _, _, tp = heapq.heappop(heap)
            buffer = self.buffers[tp]
            out.append((tp, buffer.popleft()[1]))
            if buffer:
                heapq.heappush(heap, (buffer[0][0], buffer[0][1].offset, order[tp], tp))
            elif tp in waiting:  # only a buffer just emptied can stop the merge
                break
        return out

    def requeue(self, taken: Sequence[tuple[Hashable, Any]]) -> None:
        """Put records taken back at the front of their buffers (their batch failed and is handled again)."""
        for tp, record in reversed(taken):
            self.buffers.setdefault(tp, deque()).appendleft((self.time_of(record), record))

    def drop(self, partitions: Iterable[Hashable]) -> None:
        """Forget what is buffered for ``partitions`` (revoked: their next owner reads them again)."""
        for tp in partitions:
            self.buffers.pop(tp, None)
            self.next_offset.pop(tp, None)
            self._empty_polls.pop(tp, None)
