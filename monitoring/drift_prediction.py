"""Prediction drift: the distribution of a model's outputs against a *trailing* reference.

The models learn online, so their scores move as they learn; a fixed reference (the offline model's scores)
would flag the model's own learning forever. The output of the last ``window`` events is therefore compared
with the output of a reference period that trails it by ``lag`` events, refreshed every ``refresh`` events:
abrupt changes of the output distribution alert, slow evolution does not (gradual *input* drift is caught per
feature against the fixed reference). Until ``lag + reference_size`` outputs were seen, the initial reference
is the profile given (the offline model's scores) or, without one, the first ``reference_size`` outputs.

Probabilities are tested on a fixed lattice (``probability=True``): PSI on the probability deciles (sparse bins
merged) and KS at steps of 0.05. A learning classifier's scores creep (its confidence grows, its bias settles);
on quantile bins a creep of 0.002 inside a narrow score band is "significant" though no decision changes.
Numeric outputs (positive-class probability, regression value) get the PSI and KS tests of
:class:`driftline.monitoring.drift_numeric.NumericDriftBank`; classes get the chi-square test of
:class:`driftline.monitoring.drift_categorical.CategoricalDrift`.

Examples
--------
>>> rng = np.random.default_rng(5)
>>> detector = PredictionDrift("numeric", window=500, hop=250, alpha=1e-5, lag=2000, reference_size=1000)
>>> slow = rng.beta(2, 5, 20_000) + np.linspace(0, 0.1, 20_000)  # scores creep up as the model learns
>>> jump = rng.beta(5, 2, 2_000)  # then jump at event 20,000
>>> stream = np.concatenate([slow, jump])
>>> for start in range(0, len(stream), 500):
...     fired = [t for t in detector.update_many(stream[start : start + 500]).tests if t.rejected]
...     if fired:
...         print(f"prediction drift at {start + fired[0].position} by {fired[0].test}")
...         break
prediction drift at 20249 by psi
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from driftline.models.reference import CategoricalProfile, NumericProfile, profile_values
from driftline.monitoring.drift_categorical import CategoricalDrift
from driftline.monitoring.drift_numeric import NumericDriftBank, NumericReference
from driftline.monitoring.window import WindowTest

#: Name of the model output (the one "feature" of the numeric bank).
PREDICTION = "prediction"
#: Fixed lattice probabilities are tested on: PSI bin edges and KS evaluation points.
PROBABILITY_EDGES = np.linspace(0.1, 0.9, 9)
PROBABILITY_GRID = np.linspace(0.0, 1.0, 21)
#: Reference values kept when the reference period is longer.
REFERENCE_SAMPLE = 1000


class PredictionDrift:
    """Windowed drift tests of a model's output against a trailing reference period.

    Parameters
    ----------
    kind
        ``"numeric"`` (scores, values) or ``"categorical"`` (classes).
    window, hop, alpha
        Events per window, evaluation period, level of each test.
    lag
        Events between the end of the reference period and the end of the tested window; None: the reference is
        ``initial`` and never moves (no history is kept).
    reference_size
        Events in the reference period.
    refresh
        Events between moves of the reference period (default: ``lag``).
    initial
        Profile of the outputs to test against until the trailing reference exists.
    probability
        Numeric outputs are probabilities: test them on the fixed lattice :data:`PROBABILITY_EDGES` /
        :data:`PROBABILITY_GRID` instead of reference quantiles.
    seed
        Seed of the reference subsample.
    """

    def __init__(
        self,
        kind: Literal["numeric", "categorical"],
        window: int = 500,
        hop: int = 250,
        alpha: float = 1e-4,
        lag: int | None = 5000,
        reference_size: int = 2000,
        refresh: int | None = None,
        initial: NumericProfile | CategoricalProfile | None = None,
        probability: bool = False,
        seed: int = 0,
    ):
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"unknown kind {kind!r}")
        self.kind = kind
        self.window, self.hop, self.alpha = window, hop, alpha
        self.lag, self.reference_size = lag, reference_size
        self.refresh = refresh or lag or 0
        self.probability = probability
        self.tests_per_window = 2 if kind == "numeric" else 1
        self._rng = np.random.default_rng(seed)
        self._history: deque[Any] = deque()
        self._history_len = 0
        self._since_refresh = 0
        self.bank: NumericDriftBank | None = None
        self.categorical: CategoricalDrift | None = None
        self.references = 0
        self.tests: list[WindowTest] = []
        if initial is not None:
            self._build(initial)

    @property
    def ready(self) -> bool:
        """True once there is a reference to test against."""
        return self.bank is not None or self.categorical is not None

    @property
    def drift_detected(self) -> bool:
        """True when a test of the latest update rejected."""
        return any(t.rejected for t in self.tests)

    def update_many(self, values: Sequence[Any] | np.ndarray) -> PredictionDrift:
        """Add outputs (floats with NaN for missing, or class names); :attr:`tests` holds the tests this call ran."""
        batch = self._numeric(values) if self.kind == "numeric" else [str(v) for v in values]
        self.tests = []
        if len(batch) == 0:
            return self
        self._maybe_refresh()
        if self.bank is not None:
            self.bank.update_many(np.asarray(batch).reshape(-1, 1))
            for position, statistics in self.bank.evaluations:
                self.tests += self.bank.tests(0, statistics, position)
        elif self.categorical is not None:
            self.tests = list(self.categorical.update_many(batch).tests)  # type: ignore[arg-type]
        self._remember(batch)
        return self

    def _numeric(self, values: Sequence[Any] | np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=float)

    def _remember(self, batch: Any) -> None:
        if self.lag is None:
            return
        self._history.append(batch)
        self._history_len += len(batch)
        self._since_refresh += len(batch)
        keep = self.lag + self.reference_size + self.window
        while self._history and self._history_len - len(self._history[0]) >= keep:
            self._history_len -= len(self._history.popleft())

    def _flat(self) -> Any:
        if self.kind == "numeric":
            return np.concatenate(list(self._history)) if self._history else np.zeros(0)
        return [v for chunk in self._history for v in chunk]

    def _maybe_refresh(self) -> None:
        if self.lag is None:
            return
        if not self.ready and self._history_len >= self.reference_size:
            values = self._flat()
            self._build(self._profile(values[: self.reference_size]), values[self.reference_size :])
        elif self._since_refresh >= self.refresh and self._history_len >= self.lag + self.reference_size:
            values = self._flat()
            end = len(values) - self.lag
            self._build(self._profile(values[end - self.reference_size : end]), values[-self.window :])

    def _profile(self, values: Any) -> NumericReference | CategoricalProfile | None:
        if self.kind == "numeric":
            present = np.asarray(values, dtype=float)
            present = present[~np.isnan(present)]
            if present.size == 0:
                return None
            if present.size > REFERENCE_SAMPLE:
                present = self._rng.choice(present, REFERENCE_SAMPLE, replace=False)
            return self._reference(present)
        return profile_values(list(values), "categorical")  # type: ignore[return-value]

    def _reference(self, sample: Any, quantiles: Sequence[float] | None = None) -> NumericReference:
        if self.probability:
            return NumericReference.of(sample, edges=PROBABILITY_EDGES, grid=PROBABILITY_GRID)
        return NumericReference.of(sample, quantiles)

    def _build(
        self, profile: NumericReference | NumericProfile | CategoricalProfile | None, recent: Sequence[Any] = ()
    ) -> None:
        self._since_refresh = 0
        if profile is None:
            return
        if isinstance(profile, NumericProfile):
            if not profile.sample:
                return
            profile = self._reference(profile.sample, profile.quantiles)
        if isinstance(profile, NumericReference):
            self.bank = NumericDriftBank({PREDICTION: profile}, self.window, self.hop, self.alpha)
            self.bank.prime(np.asarray(recent, dtype=float)[-self.window :])
        elif profile.frequencies:
            present = max(1, round(profile.count * (1 - profile.missing_rate)))
            self.categorical = CategoricalDrift(profile.frequencies, present, self.window, self.hop, self.alpha)
            self.categorical.prime(list(recent)[-self.window :])
        self.references += 1
