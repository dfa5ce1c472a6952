"""The monitor's statistics over time, kept in the monitor's checkpoint.

A :class:`History` records, once ``every`` more events were seen (an event count, never the wall clock), the
time it is given and a flat row of the monitor's gauges (test statistic and p-value of every detector,
data-quality rates, estimated and realised performance). The monitor feeds it after each batch it watches, so
there is at most one point per batch and per window evaluation (``every`` is the monitor's ``hop``). It holds at
most ``capacity`` points: when full, every other point is dropped and the spacing doubles, so a long-running
monitor keeps its whole history at a coarser resolution (the most recent point is always kept).
``driftline report`` draws the drift of each feature over time from it.

Examples
--------
>>> history = History(every=100, capacity=4)
>>> for events in range(50, 1050, 50):  # batches of 50 events
...     history.observe(events, events * 10, lambda: {"detectors": [], "quality": [], "performance": {}})
>>> history.events, history.every
([100, 500, 800], 400)
>>> history.ts
[1000, 5000, 8000]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

#: Points kept per monitor (a checkpoint grows by ``CAPACITY * series * 8`` bytes at most).
CAPACITY = 512


def flatten(gauges: dict[str, Any]) -> dict[str, float]:
    """One number per series of :meth:`driftline.monitoring.monitor.Monitor.gauges` (NaN when unknown).

    Series names: ``KIND|FEATURE|DETECTOR|statistic`` and ``...|p_value`` per detector,
    ``quality|FEATURE|CHECK|rate``, ``performance|estimated`` and ``performance|realised``.

    >>> flatten({"detectors": [{"kind": "data_drift", "feature": "x", "detector": "ks", "statistic": 0.2,
    ...          "p_value": 0.01}], "quality": [{"feature": "x", "check": "missing", "rate": 0.0}],
    ...          "performance": {"estimated": 0.9, "rolling": None}})  # doctest: +NORMALIZE_WHITESPACE
    {'data_drift|x|ks|statistic': 0.2, 'data_drift|x|ks|p_value': 0.01, 'quality|x|missing|rate': 0.0,
     'performance|estimated': 0.9, 'performance|realised': nan}
    """
    row: dict[str, float] = {}
    for d in gauges.get("detectors", ()):
        key = f"{d['kind']}|{d['feature']}|{d['detector']}"
        row[f"{key}|statistic"] = _number(d.get("statistic"))
        if d.get("p_value") is not None:
            row[f"{key}|p_value"] = _number(d["p_value"])
    for q in gauges.get("quality", ()):
        row[f"quality|{q['feature']}|{q['check']}|rate"] = _number(q.get("rate"))
    performance = gauges.get("performance", {})
    if performance:
        row["performance|estimated"] = _number(performance.get("estimated"))
        row["performance|realised"] = _number(performance.get("rolling"))
    return row


def _number(value: Any) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else math.nan


class History:
    """Points ``(events, event time, gauges row)`` every ``every`` events, at most ``capacity`` of them.

    ``kinds``: record only the series whose name starts with one of these (default: every series).
    """

    def __init__(self, every: int = 250, capacity: int = CAPACITY, kinds: tuple[str, ...] | None = None):
        if every < 1 or capacity < 2:
            raise ValueError("need every >= 1 and capacity >= 2")
        self.every, self.capacity, self.kinds = every, capacity, kinds
        self.events: list[int] = []
        self.ts: list[int] = []
        self.series: dict[str, list[float]] = {}
        self._next = every

    def observe(self, events: int, ts_ms: int, gauges: Callable[[], dict[str, Any]]) -> None:
        """After a batch: record a point when ``events`` (the count so far) reached the next mark.

        ``gauges`` is only called when a point is recorded.
        """
        if events < self._next:
            return
        self._next = (events // self.every + 1) * self.every
        row = flatten(gauges())
        if self.kinds is not None:
            row = {k: v for k, v in row.items() if k.startswith(self.kinds)}
        size = len(self.events)
        for name in row.keys() - self.series.keys():
            self.series[name] = [math.nan] * size
        for name, values in self.series.items():
            values.append(row.get(name, math.nan))
        self.events.append(events)
        self.ts.append(ts_ms)
        if len(self.events) > self.capacity:
            self._thin()

    def _thin(self) -> None:
        """Drop every other point (keeping the newest) and double the spacing."""
        keep = list(range(len(self.events) - 1, -1, -2))[::-1]
        self.events = [self.events[i] for i in keep]
        self.ts = [self.ts[i] for i in keep]
        self.series = {name: [values[i] for i in keep] for name, values in self.series.items()}
        self.every *= 2
        self._next = (self.events[-1] // self.every + 1) * self.every

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``events``, ``ts`` and ``series`` (NaN as None)."""
        return {
            "every": self.every,
            "events": list(self.events),
            "ts": list(self.ts),
            "series": {k: [None if math.isnan(v) else v for v in vs] for k, vs in sorted(self.series.items())},
        }
