"""Streaming change detectors from ``river.drift`` (ADWIN, Page-Hinkley, KSWIN) on one feature or score stream.

Feeding every event to a per-event Python detector per feature would cost more than the model itself, so the
River detectors get the standardised means of consecutive blocks of ``block`` events,
``z = (block mean - reference mean) / (reference std / sqrt(values in block))`` (about N(0, 1) when nothing
changed, whatever the feature's distribution). :class:`StreamingBank` computes the block means of many streams
at once (the monitor's hot path); :class:`StreamingDrift` is one detector on one stream. Each detector's
parameter comes from the false-alarm budget:

* ADWIN: ``delta`` = the budget's level for one check (ADWIN checks every ``clock`` blocks);
* Page-Hinkley: ``threshold`` from Siegmund's run-length approximation
  (:func:`driftline.monitoring.budget.page_hinkley_threshold`);
* KSWIN: ``alpha`` = the budget's level for one block. :class:`TabulatedKSWIN` is River's KSWIN with the exact
  two-sample KS p-values of its equal-size windows precomputed (Gnedenko-Korolyuk), ~20x cheaper per update,
  same decisions.

Examples
--------
>>> rng = np.random.default_rng(1)
>>> detector = StreamingDrift("page_hinkley", mean=0.0, std=1.0, block=50, arl=1e6)
>>> stream = np.concatenate([rng.normal(0, 1, 20_000), rng.normal(0.5, 1, 5_000)])
>>> for start in range(0, len(stream), 500):
...     fired = detector.update_many(stream[start : start + 500]).tests
...     if fired:
...         print(f"{fired[0].test} fired at {start + fired[0].position}")
...         break
page_hinkley fired at 20149
"""

from __future__ import annotations

import collections
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from river import drift

from driftline.monitoring.budget import page_hinkley_threshold
from driftline.monitoring.window import WindowTest, evidence_score, hop_chunks

StreamingName = Literal["adwin", "page_hinkley", "kswin"]
STREAMING_DETECTORS: tuple[StreamingName, ...] = ("adwin", "page_hinkley", "kswin")

#: Page-Hinkley's allowance, in standard deviations of a block mean.
PAGE_HINKLEY_DELTA = 0.5
#: ADWIN checks for a cut every this many updates (River's default).
ADWIN_CLOCK = 32


def ks_equal_sizes_p_values(n: int) -> list[float]:
    """Exact ``P(D >= k / n)`` for the two-sample KS distance of two samples of ``n`` values, k = 0..n.

    Gnedenko-Korolyuk: ``2 * sum_j (-1)^(j+1) C(2n, n - jk) / C(2n, n)``, what ``scipy.stats.ks_2samp``'s
    exact method computes.

    >>> [round(p, 4) for p in ks_equal_sizes_p_values(5)]
    [1.0, 1.0, 0.873, 0.3571, 0.0794, 0.0079]
    """
    total = math.comb(2 * n, n)
    table = []
    for k in range(n + 1):
        if k == 0:
            table.append(1.0)
            continue
        alternating = sum((-1) ** (j + 1) * math.comb(2 * n, n - j * k) for j in range(1, n // k + 1))
        table.append(min(1.0, 2 * alternating / total))
    return table


class TabulatedKSWIN(drift.KSWIN):
    """River's :class:`river.drift.KSWIN` with tabulated exact p-values (same parameters, same decisions).

    >>> import random
    >>> rng = random.Random(7)
    >>> data = [rng.gauss(0, 1) for _ in range(600)] + [rng.gauss(3, 1) for _ in range(200)]
    >>> ours, river_kswin = TabulatedKSWIN(alpha=1e-4, seed=3), drift.KSWIN(alpha=1e-4, seed=3)
    >>> def detections(detector):
    ...     found = []
    ...     for i, x in enumerate(data):
    ...         detector.update(x)
    ...         if detector.drift_detected:
    ...             found.append(i)
    ...     return found
    >>> found = detections(ours)
    >>> found, found == detections(river_kswin)
    ([620], True)
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._p_table = ks_equal_sizes_p_values(self.stat_size)

    def update(self, x: float) -> TabulatedKSWIN:
        if self.drift_detected:
            self._reset()
        self.n += 1
        self.window.append(x)
        if len(self.window) < self.window_size:
            self._drift_detected = False
            return self
        older = [self.window[r] for r in self._rng.sample(range(self.window_size - self.stat_size), self.stat_size)]
        recent = list(itertools.islice(self.window, self.window_size - self.stat_size, self.window_size))
        distance = _ks_distance(np.asarray(older), np.asarray(recent))
        self.p_value = self._p_table[round(distance * self.stat_size)]
        if self.p_value <= self.alpha and distance > 0.1:
            self._drift_detected = True
            self.window = collections.deque(recent, maxlen=self.window_size)
        else:
            self._drift_detected = False
        return self


def _ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, points, "right") / a.size
    cdf_b = np.searchsorted(b, points, "right") / b.size
    return float(np.abs(cdf_a - cdf_b).max())


def make_detector(
    name: StreamingName, block: int, alpha: float | None, arl: float | None, seed: int = 0
) -> tuple[Any, float]:
    """A River detector for block means of ``block`` values, and its threshold, from the budget's share."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown streaming detector {name!r}; expected one of {STREAMING_DETECTORS}")
    return factory(block, alpha, arl, seed)


def _needs(value: float | None, what: str) -> float:
    if value is None:
        raise ValueError(what)
    return value


def _adwin(block: int, alpha: float | None, arl: float | None, seed: int) -> tuple[Any, float]:
    return drift.ADWIN(delta=_needs(alpha, "adwin needs alpha"), clock=ADWIN_CLOCK), math.nan


def _page_hinkley(block: int, alpha: float | None, arl: float | None, seed: int) -> tuple[Any, float]:
    threshold = page_hinkley_threshold(max(2.0, _needs(arl, "page_hinkley needs arl") / block), PAGE_HINKLEY_DELTA)
    return drift.PageHinkley(min_instances=30, delta=PAGE_HINKLEY_DELTA, threshold=threshold), threshold


def _kswin(block: int, alpha: float | None, arl: float | None, seed: int) -> tuple[Any, float]:
    level = _needs(alpha, "kswin needs alpha")
    return TabulatedKSWIN(alpha=level, window_size=100, stat_size=30, seed=seed), level


_FACTORIES = {"adwin": _adwin, "page_hinkley": _page_hinkley, "kswin": _kswin}


def detector_statistic(name: str, detector: Any) -> float:
    """Current statistic: Page-Hinkley's cumulative deviation, KSWIN's p-value, ADWIN's mean estimate."""
    if name == "page_hinkley":
        rise = getattr(detector, "_sum_increase", 0.0) - getattr(detector, "_min_increase", 0.0)
        fall = getattr(detector, "_max_decrease", 0.0) - getattr(detector, "_sum_decrease", 0.0)
        return float(max(rise, fall))
    if name == "kswin":
        return float(getattr(detector, "p_value", 1.0) or 1.0)
    return float(detector.estimation)


@dataclass
class _Watch:
    stream: int
    name: StreamingName
    detector: Any
    threshold: float
    alpha: float | None
    block: int


@dataclass
class _Blocks:
    """Running block sums of every stream for one block size."""

    block: int
    sums: np.ndarray
    counts: np.ndarray
    rows: int = 0
    blocks: int = 0
    watches: list[_Watch] = field(default_factory=list)


class StreamingBank:
    """River detectors on standardised block means of several streams (the monitor's hot path).

    Blocks are consecutive ``block`` events (``kswin_block`` for KSWIN); a block mean averages a stream's
    non-missing values in it.

    Parameters
    ----------
    streams
        Stream name -> reference (mean, std).
    detectors
        Names from :data:`STREAMING_DETECTORS`, each run on every stream.
    block, kswin_block
        Events per block.
    alpha, kswin_alpha
        Level of one ADWIN check and of one KSWIN update.
    arl
        Events between false alarms of one Page-Hinkley detector.
    """

    def __init__(
        self,
        streams: Mapping[str, tuple[float, float]],
        detectors: Sequence[StreamingName],
        block: int = 100,
        kswin_block: int = 500,
        alpha: float | None = None,
        kswin_alpha: float | None = None,
        arl: float | None = None,
        seed: int = 0,
    ):
        if block < 1 or kswin_block < 1:
            raise ValueError("block sizes must be >= 1")
        self.streams = list(streams)
        refs = [streams[name] for name in self.streams]
        self._mean = np.array([float(m) for m, _ in refs])
        self._std = np.array([float(s) if s > 0 and math.isfinite(s) else 1.0 for _, s in refs])
        self._groups: dict[int, _Blocks] = {}
        for name in detectors:
            size = kswin_block if name == "kswin" else block
            group = self._groups.setdefault(size, _Blocks(size, np.zeros(len(refs)), np.zeros(len(refs))))
            level = kswin_alpha if name == "kswin" else alpha
            for i in range(len(refs)):
                detector, threshold = make_detector(name, size, level, arl, seed + i)
                group.watches.append(_Watch(i, name, detector, threshold, level, size))

    @property
    def watches(self) -> list[_Watch]:
        return [w for group in self._groups.values() for w in group.watches]

    def update_many(self, matrix: np.ndarray) -> list[tuple[str, WindowTest]]:
        """Add an ``(events, streams)`` matrix (NaN = missing); the detections, ``position`` indexing its rows."""
        matrix = np.asarray(matrix, dtype=float).reshape(-1, len(self.streams))
        found: list[tuple[str, WindowTest]] = []
        present = ~np.isnan(matrix)
        values = np.where(present, matrix, 0.0)
        for group in self._groups.values():
            for start, stop, complete in hop_chunks(group.rows, matrix.shape[0], group.block):
                group.sums += values[start:stop].sum(axis=0)
                group.counts += present[start:stop].sum(axis=0)
                group.rows += stop - start
                if complete:
                    self._close(group, stop - 1, found)
        return found

    def _close(self, group: _Blocks, position: int, found: list[tuple[str, WindowTest]]) -> None:
        counts = group.counts
        with np.errstate(invalid="ignore", divide="ignore"):
            z = ((group.sums / counts - self._mean) / (self._std / np.sqrt(counts))).tolist()
        filled = (counts > 0).tolist()
        group.blocks += 1
        samples = group.blocks * group.block
        for watch in group.watches:
            if not filled[watch.stream]:
                continue
            detector = watch.detector
            detector.update(z[watch.stream])
            if detector.drift_detected:
                found.append((self.streams[watch.stream], _detection(watch, samples, position)))
        group.sums[:] = 0.0
        group.counts[:] = 0.0

    def statistics(self) -> list[tuple[str, str, float, float]]:
        """``(stream, detector, statistic, threshold)`` of every detector, now."""
        return [
            (self.streams[w.stream], w.name, detector_statistic(w.name, w.detector), w.threshold) for w in self.watches
        ]


def _detection(watch: _Watch, samples: int, position: int) -> WindowTest:
    statistic = detector_statistic(watch.name, watch.detector)
    if watch.name == "page_hinkley":
        return WindowTest(
            watch.name, statistic, watch.threshold, math.nan, statistic / watch.threshold, samples, position
        )
    if watch.name == "kswin":
        assert watch.alpha is not None
        score = max(1.0, evidence_score(statistic, watch.alpha))
        return WindowTest(watch.name, statistic, watch.alpha, statistic, score, samples, position)
    return WindowTest(watch.name, statistic, math.nan, math.nan, 1.0, samples, position)


class StreamingDrift:
    """A ``river.drift`` detector fed standardised block means of one stream (a one-stream :class:`StreamingBank`).

    Parameters
    ----------
    name
        ``"adwin"``, ``"page_hinkley"`` or ``"kswin"``.
    mean, std
        Reference mean and standard deviation of the stream's values.
    block
        Values per block mean (one detector update per block).
    alpha
        Level of one update (KSWIN) or one check (ADWIN, every ``clock`` updates). Required for those two.
    arl
        Average run length in *values* between false alarms (Page-Hinkley). Required for it.
    seed
        KSWIN's sampling seed.
    """

    def __init__(
        self,
        name: StreamingName,
        mean: float,
        std: float,
        block: int = 100,
        alpha: float | None = None,
        arl: float | None = None,
        seed: int = 0,
    ):
        self.name = name
        self._bank = StreamingBank({"x": (mean, std)}, (name,), block, block, alpha, alpha, arl, seed)
        self._watch = self._bank.watches[0]
        self.threshold = self._watch.threshold
        self.tests: list[WindowTest] = []

    @property
    def detector(self) -> Any:
        """The River detector."""
        return self._watch.detector

    @property
    def drift_detected(self) -> bool:
        return bool(self.detector.drift_detected)

    @property
    def statistic(self) -> float:
        return detector_statistic(self.name, self.detector)

    def update(self, x: float) -> StreamingDrift:
        """Add one value (NaN ignored)."""
        return self.update_many(np.array([x], dtype=float))

    def update_many(self, values: np.ndarray) -> StreamingDrift:
        """Add values (NaN ignored); :attr:`tests` lists the detections of this call (``position`` indexes
        ``values``)."""
        self.tests = [test for _, test in self._bank.update_many(np.asarray(values, dtype=float).reshape(-1, 1))]
        return self
