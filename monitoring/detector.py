"""The detector protocol: what every family of detectors of a monitor declares, observes and returns.

A monitor is assembled from detector *families* registered by name (:func:`register`, as NannyML's
``MethodFactory.register`` or River's ``base.DriftDetector``): ``data_drift``, ``data_quality``,
``prediction_drift``, ``performance``, ``concept_drift`` (:mod:`driftline.monitoring.families`). Each family

* declares how many tests it runs (:meth:`Detector.count`), from the same :class:`Scope` it is built from, so
  the false-alarm budget (:mod:`driftline.monitoring.budget`) is split over exactly the detectors that run;
* is built from the scope and the budget's :class:`Levels` (and the reference profile, if any);
* observes one :data:`Observation` at a time (a scored batch, a batch of joined outcomes or dead-lettered events)
  and returns what it found as :class:`Finding` values, one return type for every detector;
* reports its current statistics as gauge rows (:meth:`Detector.gauges`).

Pure logic, no I/O.

Examples
--------
>>> source("data_drift", "ks", "x", 500).key
'data_drift:ks:x'
>>> Levels.of(FalseAlarmBudget(1.0, "bonferroni"), detectors=10, hop=250, block=250, kswin_block=1000).alpha
0.00025
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from driftline.contract.records import AlertKind
from driftline.models.reference import ReferenceProfile
from driftline.monitoring.budget import FalseAlarmBudget
from driftline.monitoring.config import MonitorConfig
from driftline.monitoring.drift_prediction import PREDICTION
from driftline.monitoring.streaming import ADWIN_CLOCK
from driftline.monitoring.window import WindowTest

__all__ = [
    "REGISTRY",
    "Detector",
    "EventBatch",
    "Finding",
    "InvalidBatch",
    "Levels",
    "Observation",
    "OutcomeBatch",
    "Scope",
    "Source",
    "finite",
    "register",
    "source",
]


@dataclass(frozen=True)
class Source:
    """Where a test result comes from: the alert fields a detector fixes (``key`` is unique in a monitor)."""

    key: str
    kind: AlertKind
    feature: str | None
    detector: str
    window: int | None
    resets: bool = False


@lru_cache(maxsize=4096)
def source(kind: AlertKind, detector: str, feature: str | None, window: int | None, resets: bool = False) -> Source:
    """The (cached) :class:`Source` of a detector; ``resets`` for detectors that restart after firing."""
    return Source(f"{kind}:{detector}:{feature or '-'}", kind, feature, detector, window, resets)


def finite(value: float | None) -> float | None:
    """``value``, or None when it is None, NaN or infinite (JSON- and Prometheus-friendly)."""
    return value if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Finding:
    """One test result a detector reports: where it comes from and the test."""

    source: Source
    test: WindowTest


@dataclass(frozen=True)
class Scope:
    """What a monitor watches: the model's task, its numeric and categorical features, and the settings."""

    task: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    config: MonitorConfig

    @property
    def prediction_numeric(self) -> bool:
        """The output tested for prediction drift is a number (score or value), not a class."""
        return self.task != "multiclass"

    def streaming_scope(self) -> list[str]:
        """Streams River's streaming detectors watch (features, and ``prediction`` when asked for)."""
        scope = self.config.streaming_features
        if scope is None:
            return list(self.numeric)
        names = list(self.numeric) + ([PREDICTION] if self.prediction_numeric else [])
        return [n for n in names if n in scope]


@dataclass(frozen=True)
class Levels:
    """The budget's share for one detector of a monitor of ``detectors`` tests (see ``budget``)."""

    detectors: int
    alpha: float  # a windowed test run every ``hop`` events
    arl: float  # a sequential detector (events between false alarms)
    block_alpha: float  # one ADWIN check on block means
    kswin_alpha: float  # one KSWIN update on block means
    error_alpha: float  # one check per outcome (error-stream ADWIN, DDM)

    @classmethod
    def of(cls, budget: FalseAlarmBudget, detectors: int, hop: int, block: int, kswin_block: int) -> Levels:
        return cls(
            detectors,
            budget.alpha(detectors, hop),
            budget.arl(detectors),
            budget.alpha(detectors, block * ADWIN_CLOCK),
            budget.alpha(detectors, kswin_block),
            budget.alpha(detectors, 1),
        )


@dataclass
class EventBatch:
    """A scored batch as the detectors see it.

    ``matrix`` holds the numeric features (NaN = missing); ``scores`` the numeric output tested for drift (None
    for multiclass); ``confidences`` the top-class probabilities (None without probabilities); ``learning`` is
    True while the monitor still learns its reference from the events; ``relevant(key, score)`` says whether a
    test result can change the alert policy's state (cheap pre-filter of large banks); ``unseen`` is filled by
    the categorical drift tests with the count of unseen categories per feature (data quality reuses it).
    ``pieces``: the lengths of the monitor's chunks this batch groups (None: one chunk), see
    :meth:`driftline.monitoring.monitor.Monitor.observe_events`; a family whose state depends on how the events
    were batched (data quality's window of whole chunks) takes them piece by piece, and ``unseen`` then holds one
    count per piece.
    """

    features: Sequence[dict[str, Any]]
    matrix: np.ndarray
    predictions: Sequence[Any]
    scores: np.ndarray | None
    confidences: np.ndarray | None
    learning: bool
    relevant: Callable[[str, float], bool]
    unseen: dict[str, Any] = field(default_factory=dict)
    pieces: tuple[int, ...] | None = None
    _columns: dict[str, list[Any]] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        """The values of feature ``name`` (None where missing), computed once per batch."""
        values = self._columns.get(name)
        if values is None:
            values = self._columns[name] = [f.get(name) for f in self.features]
        return values


@dataclass(frozen=True)
class OutcomeBatch:
    """Joined outcomes: the error of each (0/1 for classifiers, absolute error for regression); for binary
    classifiers also the positive-class score, whether the label and the prediction were positive, the event ids
    and the version that scored them (what CBPE calibrates on and compares with). ``concept_errors``: the errors
    concept drift watches when they are not ``errors`` (the learner's frozen model's, see
    :mod:`driftline.streams.staged_learning`)."""

    errors: np.ndarray
    scores: np.ndarray | None = None
    positives: np.ndarray | None = None
    predicted: np.ndarray | None = None
    event_ids: Sequence[str] = ()
    version: int | None = None
    concept_errors: np.ndarray | None = None


@dataclass(frozen=True)
class InvalidBatch:
    """Events that failed validation (dead-lettered before scoring)."""

    count: int


Observation = EventBatch | OutcomeBatch | InvalidBatch


class Detector(Protocol):
    """A family of detectors of one monitor (see the module docstring)."""

    #: The name it is registered and configured under.
    name: ClassVar[str]

    @classmethod
    def count(cls, scope: Scope) -> int:
        """Tests this family runs for ``scope`` (its share of the false-alarm budget)."""
        ...

    def observe(self, observation: Observation) -> list[Finding]:
        """Watch one observation; the test results that may alert (positions index the observation)."""
        ...

    def learn_reference(self, profile: ReferenceProfile) -> None:
        """A reference profile learnt from the first events is ready: build what needs it."""
        ...

    # Optional: ``quiet(events) -> bool``, True when ``events`` more scored events run no test and their
    # observation may be grouped with later ones (the monitor then observes them later, in one batch with
    # ``pieces``); the same state must follow either way. A family without it is observed chunk by chunk.
    # Optional: ``gauge_kinds: ClassVar[tuple[str, ...]]``, the kinds of the series its gauges give (the first
    # part of :func:`driftline.monitoring.history.flatten`'s names); a history that keeps none of them skips its
    # gauges. A family without it is asked every time.

    def gauges(self) -> dict[str, Any]:
        """Current statistics: ``{"detectors": [rows]}`` and any summary keys of its own."""
        ...


#: Registered detector families by name, in the order a monitor runs them.
REGISTRY: dict[str, type] = {}


T = TypeVar("T")


def register(cls: type[T]) -> type[T]:
    """Class decorator: register a detector family under its ``name``."""
    name = cls.name  # type: ignore[attr-defined]
    if name in REGISTRY and REGISTRY[name] is not cls:
        raise ValueError(f"detector family {name!r} registered twice")
    REGISTRY[name] = cls
    return cls
