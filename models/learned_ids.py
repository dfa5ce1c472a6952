"""The learned label ids the learner remembers for exactly-once: a window of label event time, bounded in count.

An id is kept as a 64-bit BLAKE2b digest in a ring of ``capacity`` slots beside its label's event time, with a set
of the digests for lookups: the ring pickles as two int64 arrays (a learner checkpoint with 100,000 ids took ~0.35 s
to pickle as an ordered dict of strings, the rings take a copy). Two ids share a digest with probability
``len / 2**64`` per lookup: a label would then be refused as a duplicate (dead-lettered, never lost silently).

Ids leave oldest first: once the learner's clock is more than ``window_ms`` after their label's time, or, to stay
within ``capacity``, before that (counted in :attr:`LearnedIds.forgotten_early`). The clock is the median time of
the last :data:`CLOCK_LABELS` labels (:meth:`LearnedIds.advance`, never backwards): a label dated far ahead, which
a producer may send, does not make the learner forget what it learned.

>>> ids = LearnedIds(capacity=2, window_ms=100)
>>> ids.advance([1_000, 1_050]); ids.add(digest("a"), 1_000); ids.add(digest("b"), 1_050)
>>> digest("a") in ids, digest("c") in ids
(True, False)
>>> ids.advance([1_060]); ids.add(digest("c"), 1_060); digest("a") in ids, len(ids), ids.forgotten_early
(False, 2, 1)
>>> ids.advance([1_200] * 4); ids.add(digest("d"), 1_200); [digest(x) in ids for x in "bcd"], ids.forgotten_early
([False, False, True], 1)
"""

from __future__ import annotations

import array
import functools
import hashlib
import operator
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: Time of an id learned without one: never leaves by time, only by capacity.
UNDATED = 2**63 - 1
#: Labels whose median time is the clock of the window.
CLOCK_LABELS = 1001
#: Batches of fewer ids than this are added one by one (NumPy's fixed cost per call is more than they save).
MIN_ARRAY_IDS = 32
#: A label time that is not None.
_DATED = functools.partial(operator.is_not, None)


def digest(event_id: str) -> int:
    """The 64-bit key of ``event_id``."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little", signed=True)


def digest_many(event_ids: Sequence[str]) -> list[int]:
    """:func:`digest` of each id: the digests joined and read as int64 in one pass (no ``int.from_bytes`` per id).

    >>> many = [str(i) for i in range(40)]
    >>> digest_many(many) == [digest(e) for e in many], digest_many(["a"]) == [digest("a")], digest_many([])
    (True, True, [])
    """
    blake = hashlib.blake2b
    if len(event_ids) < MIN_ARRAY_IDS:
        return [digest(event_id) for event_id in event_ids]
    raw = b"".join([blake(event_id.encode(), digest_size=8).digest() for event_id in event_ids])
    return np.frombuffer(raw, dtype="<i8").tolist()


def _wrapped_list(ring: list[Any], start: int, count: int) -> list[Any]:
    """``count`` entries of ``ring`` from ``start`` on, wrapping to 0.

    >>> _wrapped_list([0, 1, 2, 3, 4], 3, 4)
    [3, 4, 0, 1]
    """
    end = start + count
    return ring[start:end] if end <= len(ring) else ring[start:] + ring[: end - len(ring)]


def _wrapped(ring: np.ndarray, start: int, count: int) -> np.ndarray:
    """``count`` entries of ``ring`` from ``start`` on, wrapping to 0.

    >>> _wrapped(np.arange(5), 3, 4).tolist()
    [3, 4, 0, 1]
    """
    end = start + count
    return ring[start:end] if end <= len(ring) else np.concatenate([ring[start:], ring[: end - len(ring)]])


class LearnedIds:
    """Learned ids in arrival order with their label time; see the module docstring."""

    def __init__(self, capacity: int, window_ms: int):
        if capacity < 1 or window_ms < 0:
            raise ValueError("capacity must be >= 1 and window_ms >= 0")
        self.capacity, self.window_ms = int(capacity), int(window_ms)
        #: The ring, as int64 arrays: a checkpoint reads them with NumPy without converting 100,000 ints.
        self._keys = array.array("q", bytes(8 * self.capacity))
        self._times = array.array("q", bytes(8 * self.capacity))
        #: The ring's keys as the very int objects the set holds (not pickled): a set finds an id that leaves by
        #: identity, without reading the int it holds (half the time of an equal int made from the int64 ring).
        self._objects: list[Any] = [None] * self.capacity
        self._start = self._size = 0
        self._present: set[int] = set()
        self._recent: deque[int] = deque(maxlen=CLOCK_LABELS)
        #: The clock (see :meth:`advance`), and how many ids left before their window ended.
        self.latest_ts: int | None = None
        self.forgotten_early = 0

    def __contains__(self, key: int) -> bool:
        """Whether the id of :func:`digest` ``key`` is remembered."""
        return key in self._present

    def __len__(self) -> int:
        return self._size

    def isdisjoint(self, keys: Iterable[int]) -> bool:
        """Whether none of ``keys`` is remembered (in one pass, no list).

        >>> ids = LearnedIds(capacity=2, window_ms=10)
        >>> ids.add(5, None)
        >>> ids.isdisjoint([6, 7]), ids.isdisjoint([6, 5])
        (True, False)
        """
        return self._present.isdisjoint(keys)

    def contains_many(self, keys: Sequence[int]) -> list[bool]:
        """``key in self`` of each key, in one pass.

        >>> ids = LearnedIds(capacity=2, window_ms=10)
        >>> ids.add(5, None)
        >>> ids.contains_many([5, 6])
        [True, False]
        """
        return list(map(self._present.__contains__, keys))

    def advance(self, times: Iterable[int | None]) -> None:
        """Move the clock with the times of a batch of labels: to the median of the last :data:`CLOCK_LABELS`
        label times, if that is later.

        >>> ids = LearnedIds(capacity=2, window_ms=10)
        >>> ids.advance([5, None, 9, 7]); ids.latest_ts
        7
        """
        if type(times) is list and None not in times and set(map(type, times)) == {int}:
            self._recent.extend(times)  # the usual batch: ints already (a bool is an int, not of type int)
        else:
            self._recent.extend(map(int, filter(_DATED, times)))
        if self._recent:
            median = sorted(self._recent)[len(self._recent) // 2]
            self.latest_ts = median if self.latest_ts is None else max(self.latest_ts, median)

    def add(self, key: int, ts: int | None) -> None:
        """Remember the id of :func:`digest` ``key`` (not in it yet), learned from a label at ``ts`` (None: none)."""
        start = None if self.latest_ts is None else self.latest_ts - self.window_ms
        while self._size and start is not None and self._times[self._start] < start:
            self._pop()
        if self._size == self.capacity:
            self.forgotten_early += start is None or self._times[self._start] >= start
            self._pop()
        slot = (self._start + self._size) % self.capacity
        self._keys[slot], self._times[slot] = key, UNDATED if ts is None else ts
        self._objects[slot] = key
        self._present.add(key)
        self._size += 1

    def add_many(self, keys: Sequence[int], times: Sequence[int | None]) -> None:
        """:meth:`add` of each key (none in it yet, no two alike) with its label's time, in order.

        On arrays when the ids that leave by time are only the oldest ones (the usual case: label times move
        forward): those leave, then the oldest of the rest as many as the capacity needs; else one by one.

        >>> one, many = LearnedIds(capacity=3, window_ms=10), LearnedIds(capacity=3, window_ms=10)
        >>> for ids in (one, many):
        ...     ids.advance([100])
        >>> for key, ts in zip(range(5), [95, 80, None, 100, 101]):
        ...     one.add(key, ts)
        >>> many.add_many(range(5), [95, 80, None, 100, 101])
        >>> one.__getstate__()["keys"].tolist() == many.__getstate__()["keys"].tolist(), many.forgotten_early
        (True, 1)
        """
        if len(keys) != len(times):
            raise ValueError("one time per key")
        if len(keys) < MIN_ARRAY_IDS or not self._add_arrays(keys, times):
            self._add_each(keys, times)

    def _add_arrays(self, keys: Sequence[int], times: Sequence[int | None]) -> bool:
        """:meth:`add_many` on arrays; False (nothing changed) when an id other than the oldest ones would leave by
        time, or a time is not an int64.

        The ids ``S`` (the ring's, oldest first, then ``keys``) leave from the front: before each add the old ones
        at the front (by time), then one more if the ring is full (early). With ``k`` old ids at the front of the
        ring and none old where the front goes next (positions ``k`` to ``f``), the ids ``S[:f]`` leave, ``f - k``
        of them early, where ``f = max(k, size + len(keys) - capacity)``.
        """
        capacity, size, first, count = self.capacity, self._size, self._start, len(keys)
        try:
            new_keys = np.array(keys, dtype=np.int64)
            new_times = np.array([UNDATED if t is None else t for t in times] if None in times else times, np.int64)
        except (OverflowError, TypeError, ValueError):
            return False
        ring_keys, ring_times = np.frombuffer(self._keys, dtype=np.int64), np.frombuffer(self._times, dtype=np.int64)
        start = None if self.latest_ts is None else self.latest_ts - self.window_ms
        old_head = 0
        if start is not None and size:
            head = _wrapped(ring_times, first, min(size, 1024)) < start
            old_head = int(np.argmin(head)) if not head.all() else len(head)
            if old_head == 1024 and size > 1024:
                return False  # many leave by time: one by one
        front = max(old_head, size + count - capacity)
        if start is not None:  # none old where the front goes: positions old_head .. front (inclusive)
            stop = min(front + 1, size + count)
            ahead = min(stop, size) - old_head  # of the ring's ids
            if ahead > 0 and (_wrapped(ring_times, (first + old_head) % capacity, ahead) < start).any():
                return False
            if stop > size and (new_times[max(0, old_head - size) : stop - size] < start).any():
                return False
        leaving = min(front, size)
        objects = self._objects
        if leaving:
            self._present.difference_update(_wrapped_list(objects, first, leaving))
        staying = max(0, front - size)
        at = (first + size + staying) % capacity  # the new ids' slots: ``at`` on, wrapping to 0
        fits = min(count - staying, capacity - at)
        for ring, new in ((ring_keys, new_keys), (ring_times, new_times)):
            ring[at : at + fits] = new[staying : staying + fits]
            ring[: count - staying - fits] = new[staying + fits :]
        # the caller's ints when they are ints (digest_many's), else ints from the array (the same values)
        if set(map(type, keys)) == {int}:
            kept = keys[staying:] if type(keys) is list else list(keys)[staying:]
        else:
            kept = new_keys[staying:].tolist()
        objects[at : at + fits] = kept[:fits]
        objects[: count - staying - fits] = kept[fits:]
        self._present.update(kept)
        self._start, self._size = (first + front) % capacity, size + count - front
        self.forgotten_early += front - old_head
        return True

    def _add_each(self, keys: Sequence[int], times: Sequence[int | None]) -> None:
        """:meth:`add` of each key, inlined."""
        start = None if self.latest_ts is None else self.latest_ts - self.window_ms
        ring_keys, ring_times, present, capacity = self._keys, self._times, self._present, self.capacity
        objects = self._objects
        first, size, forgotten = self._start, self._size, 0
        for key, ts in zip(keys, times, strict=True):
            while size and start is not None and ring_times[first] < start:
                present.discard(objects[first])
                first, size = (first + 1) % capacity, size - 1
            if size == capacity:
                forgotten += start is None or ring_times[first] >= start
                present.discard(objects[first])
                first, size = (first + 1) % capacity, size - 1
            slot = (first + size) % capacity
            ring_keys[slot], ring_times[slot] = key, UNDATED if ts is None else ts
            objects[slot] = key
            present.add(key)
            size += 1
        self._start, self._size = first, size
        self.forgotten_early += forgotten

    def _pop(self) -> None:
        self._present.discard(self._objects[self._start])
        self._start = (self._start + 1) % self.capacity
        self._size -= 1

    def _ordered(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and times oldest first (copies)."""
        end = self._start + self._size
        rings = np.frombuffer(self._keys, dtype=np.int64), np.frombuffer(self._times, dtype=np.int64)
        if end <= self.capacity:
            keys, times = (ring[self._start : end].copy() for ring in rings)
            return keys, times
        wrapped = end - self.capacity
        keys, times = (np.concatenate([ring[self._start :], ring[:wrapped]]) for ring in rings)
        return keys, times

    def resize(self, capacity: int, window_ms: int) -> None:
        """Take a new capacity and window; past a smaller capacity the oldest ids leave (early)."""
        keys, times = self._ordered()
        state = self.__getstate__() | {"keys": keys, "times": times}
        state["capacity"], state["window_ms"] = int(capacity), int(window_ms)
        if len(keys) > capacity:
            state["forgotten_early"] += len(keys) - int(capacity)
            state["keys"], state["times"] = keys[len(keys) - capacity :], times[len(keys) - capacity :]
        self.__setstate__(state)

    def __getstate__(self) -> dict[str, Any]:
        keys, times = self._ordered()
        return {
            "capacity": self.capacity,
            "window_ms": self.window_ms,
            "keys": keys,
            "times": times,
            "latest_ts": self.latest_ts,
            "recent": list(self._recent),
            "forgotten_early": self.forgotten_early,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["capacity"], state["window_ms"])  # type: ignore[misc]
        keys, times = np.asarray(state["keys"], dtype=np.int64), np.asarray(state["times"], dtype=np.int64)
        size = len(keys)
        np.frombuffer(self._keys, dtype=np.int64)[:size] = keys
        np.frombuffer(self._times, dtype=np.int64)[:size] = times
        self._size = size
        self._objects[:size] = objects = keys.tolist()
        self._present = set(objects)
        self.latest_ts, self.forgotten_early = state["latest_ts"], state["forgotten_early"]
        self._recent.extend(state.get("recent", ()))
