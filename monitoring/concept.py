"""Concept drift on a model's error stream, once labels are joined.

* :class:`BernoulliCUSUM` (ours, the default): one-sided CUSUMs of the log-likelihood ratio of the 0/1 error
  stream for several error-odds increases at once (x1.5, x2.5, x5, x12 over a baseline learnt from the stream),
  with the threshold ``h = ln(arl * scales)`` that keeps the average run length between false alarms above
  ``arl`` (Lorden's bound, Bonferroni over the scales). It only reacts to *increases* of the error rate, and is
  computed per batch with numpy (Lindley's recursion as a cumulative minimum).
* River's ADWIN (any error stream), DDM and EDDM (0/1 errors), and Page-Hinkley (standardised block means of
  regression errors, upward side only), each held to its share of the false-alarm budget where its parameters
  allow it, and kept quiet for ``grace`` outcomes after each of its resets (DDM and EDDM are unstable right after
  one). Every error-stream detector alarms on *degradation* only: ADWIN's cuts where the error rate fell are
  improvements, logged, never alerts (an improvement is no reason to retrain).

Examples
--------
>>> rng = np.random.default_rng(3)
>>> errors = np.concatenate([rng.random(5000) < 0.05, rng.random(2000) < 0.25]).astype(int)  # drift at 5000
>>> cusum, adwin = BernoulliCUSUM(arl=1e6), drift.ADWIN(delta=0.002)
>>> next(i for i in range(0, len(errors), 100) if cusum.update_many(errors[i : i + 100]).detections)
5000
>>> cusum.detections[0] + 5000  # the outcome at which it fired
5053
>>> next(i for i, e in enumerate(errors) if adwin.update(e) or adwin.drift_detected)  # ADWIN(0.002), same stream
5087
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from river import drift
from river.drift import binary
from scipy import special

from driftline.monitoring.budget import cusum_threshold, page_hinkley_threshold
from driftline.monitoring.window import WindowTest

log = logging.getLogger(__name__)

ErrorDetectorName = Literal["cusum", "adwin", "ddm", "eddm", "page_hinkley"]
ERROR_DETECTORS: tuple[ErrorDetectorName, ...] = ("cusum", "adwin", "ddm", "eddm", "page_hinkley")
#: EDDM's warning and drift levels (River's defaults 0.95 / 0.9 raised false alarms on our stationary error
#: streams of learning models; these were measured, EDDM has no run-length theory to derive them from).
EDDM_WARNING, EDDM_DRIFT = 0.6, 0.5
#: Errors EDDM sees after a reset before it may fire (its reference maximum is noisy before).
EDDM_WARM_ERRORS = 300
#: Outcomes per block mean fed to Page-Hinkley on regression errors.
REGRESSION_BLOCK = 25
#: Detectors that need 0/1 errors (classification).
BINARY_ONLY = frozenset({"cusum", "ddm", "eddm"})
#: Detectors that need real-valued errors (regression).
REGRESSION_ONLY = frozenset({"page_hinkley"})


def detectors_for_task(task: str, detectors: Sequence[str]) -> list[str]:
    """The error-stream detectors of ``detectors`` that fit ``task`` (0/1 errors or absolute errors).

    >>> detectors_for_task("regression", ERROR_DETECTORS)
    ['adwin', 'page_hinkley']
    """
    unknown = set(detectors) - set(ERROR_DETECTORS)
    if unknown:
        raise ValueError(f"unknown error-stream detectors {sorted(unknown)}; expected {ERROR_DETECTORS}")
    skip = BINARY_ONLY if task == "regression" else REGRESSION_ONLY
    return [name for name in detectors if name not in skip]


class BernoulliCUSUM:
    """Multi-scale one-sided Bernoulli CUSUM: detects increases of a 0/1 error rate.

    Parameters
    ----------
    arl
        Average number of outcomes between false alarms when the error rate does not change.
    odds_ratios
        Error-odds increases watched in parallel (one CUSUM each).
    warmup
        Outcomes after a (re)start that only estimate the baseline error rate.
    horizon
        Outcomes the baseline estimate averages over (an exponential moving average).
    """

    def __init__(
        self,
        arl: float = 1e6,
        odds_ratios: Sequence[float] = (1.5, 2.5, 5.0, 12.0),
        warmup: int = 200,
        horizon: int = 5000,
    ):
        if not odds_ratios or min(odds_ratios) <= 1:
            raise ValueError("odds ratios must exceed 1")
        self.arl = arl
        self.odds_ratios = np.asarray(odds_ratios, dtype=float)
        self.warmup, self.horizon = warmup, horizon
        self.threshold = cusum_threshold(arl * len(self.odds_ratios))
        self.detections: list[int] = []
        self.resets = 0
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.baseline = 0.0
        self.sums = np.zeros(len(self.odds_ratios))

    @property
    def statistic(self) -> float:
        """The largest of the CUSUMs (fires above :attr:`threshold`)."""
        return float(self.sums.max())

    @property
    def drift_detected(self) -> bool:
        """True when the latest update fired."""
        return bool(self.detections)

    def update(self, error: int | bool) -> BernoulliCUSUM:
        """Add one outcome (1 = error)."""
        return self.update_many(np.array([int(error)]))

    def update_many(self, errors: np.ndarray) -> BernoulliCUSUM:
        """Add outcomes (1 = error); :attr:`detections` lists the indices into ``errors`` at which it fired."""
        errors = np.asarray(errors, dtype=float)
        self.detections = []
        start = 0
        while start < errors.size:
            fired = self._run(errors[start:])
            if fired is None:
                break
            self.detections.append(start + fired)
            self.resets += 1
            self._reset()
            start += fired + 1
        return self

    def _run(self, errors: np.ndarray) -> int | None:
        """Consume ``errors`` until the first alarm; the index of the alarm or None."""
        head = min(errors.size, max(0, self.warmup - self.n))
        if head:
            self._learn(errors[:head])
        rest = errors[head:]
        if rest.size == 0:
            return None
        p0 = min(0.99, max(1e-4, self.baseline))
        p1 = self.odds_ratios * p0 / (1 - p0 + self.odds_ratios * p0)
        up, down = np.log(p1 / p0), np.log((1 - p1) / (1 - p0))
        steps = np.where(rest[None, :] > 0, up[:, None], down[:, None])
        cumulative = np.cumsum(steps, axis=1, out=steps)  # in place: the same values, fewer arrays
        floor = np.minimum.accumulate(cumulative, axis=1)
        sums = np.subtract(cumulative, np.minimum(floor, -self.sums[:, None], out=floor), out=floor)
        if (sums > self.threshold).any():
            fired = int(np.flatnonzero((sums > self.threshold).any(axis=0))[0])
            self._learn(rest[: fired + 1])
            return head + fired
        self.sums = sums[:, -1].copy()
        self._learn(rest)
        return None

    def _learn(self, errors: np.ndarray) -> None:
        if errors.size == 0:
            return
        self.n += errors.size
        weight = min(1.0, errors.size / min(self.n, self.horizon))
        self.baseline += weight * (float(errors.mean()) - self.baseline)


class _RiverErrorDetector:
    """A River detector on an error stream, silent for ``grace`` outcomes after each of its resets, alarming on
    *degradation* only: a detection where the error estimate fell (ADWIN is two-sided) is an improvement, logged,
    never a detection (an improvement is no reason to retrain).

    With ``scale``, errors are standardised (mean and std learnt over the first ``grace`` outcomes) and fed as
    standardised means of ``block`` outcomes: regression errors are skewed, their block means nearly normal.
    """

    def __init__(
        self, name: ErrorDetectorName, detector: Any, grace: int, scale: tuple[float, float] | None, block: int = 1
    ):
        self.name, self.detector, self.grace, self.block = name, detector, grace, block
        self._scale = scale
        self._since_reset = 0
        self._warm: list[float] = []
        self._partial: list[float] = []
        self.detections: list[int] = []

    def update_many(self, errors: np.ndarray) -> None:
        self.detections = []
        detector = self.detector
        inlined = _INLINED.get(type(detector)) if self._scale is None and self.block == 1 else None
        if inlined is not None:
            self.detections, self._since_reset = inlined(detector, errors, self.grace, self._since_reset)
            return
        for i, x in enumerate(errors.tolist()):
            if self._scale is not None:
                x = self._block_mean(x)
                if x is None:
                    continue
            before = getattr(detector, "estimation", None)
            detector.update(x)
            self._since_reset += self.block
            if detector.drift_detected:
                after = getattr(detector, "estimation", None)
                if before is not None and after is not None and after < before:
                    log.info(
                        "%s: the error rate fell from %.4f to %.4f (improvement, no alert)", self.name, before, after
                    )
                elif self._since_reset > self.grace:
                    self.detections.append(i)
                self._since_reset = 0

    def _block_mean(self, x: float) -> float | None:
        assert self._scale is not None
        if len(self._warm) < self.grace:
            self._warm.append(x)
            if len(self._warm) == self.grace:
                std = float(np.std(self._warm))
                self._scale = (float(np.mean(self._warm)), std if std > 0 else 1.0)
            return None
        self._partial.append(x)
        if len(self._partial) < self.block:
            return None
        mean, std = self._scale
        z = (sum(self._partial) / self.block - mean) / (std / math.sqrt(self.block))
        self._partial = []
        return z


def _ddm_many(ddm: binary.DDM, errors: np.ndarray, grace: int, since_reset: int) -> tuple[list[int], int]:
    """River's ``DDM.update`` of each error in order, inlined (the same operations on the same floats, ~4 times
    faster), with :meth:`_RiverErrorDetector.update_many`'s grace: the positions of the detections it reports
    and the outcomes since the last reset. The warning and drift levels (``p_min + k * s_min``) are computed
    when the minimum moves, not at every error."""
    warm, warning_at, drift_at = ddm.warm_start, ddm.warning_threshold, ddm.drift_threshold
    mean = ddm._p
    n, p, p_min, s_min, ps_min = mean.n, mean._mean, ddm._p_min, ddm._s_min, ddm._ps_min
    drifted, warning = ddm._drift_detected, ddm._warning_detected
    warn_level = drift_level = None
    if p_min is not None and s_min is not None:
        warn_level, drift_level = p_min + warning_at * s_min, p_min + drift_at * s_min
    sqrt = math.sqrt
    counted = 0  # outcomes up to here are in ``since_reset``
    found = []
    for i, x in enumerate(errors.tolist()):
        if drifted:  # DDM._reset: a new mean, no minimum
            n, p, p_min, s_min, ps_min = 0.0, 0.0, None, None, float("inf")
            warn_level = drift_level = None
            drifted = warning = False
        n += 1.0
        p += (1.0 / n) * (x - p)
        s = sqrt(p * (1 - p) / n)
        if n > warm:
            ps = p + s
            if ps <= ps_min:
                p_min, s_min = p, s
                ps_min = p_min + s_min
                warn_level, drift_level = p_min + warning_at * s_min, p_min + drift_at * s_min
            warning = ps > warn_level  # type: ignore[operator]
            if ps > drift_level:  # type: ignore[operator]
                drifted, warning = True, False
                since_reset += i + 1 - counted
                counted = i + 1
                if since_reset > grace:
                    found.append(i)
                since_reset = 0
    mean.n, mean._mean = n, p
    ddm._p_min, ddm._s_min, ddm._ps_min = p_min, s_min, ps_min
    ddm._drift_detected, ddm._warning_detected = drifted, warning
    return found, since_reset + len(errors) - counted


def _eddm_many(eddm: binary.EDDM, errors: np.ndarray, grace: int, since_reset: int) -> tuple[list[int], int]:
    """River's ``EDDM.update`` of each error in order, inlined as :func:`_ddm_many` (``stats.Var``'s Welford
    steps too), visiting only the errors (``x == 1``): an outcome that is none only counts (``_n`` and the grace)
    and, after a drift, resets; those counts are added at the next error, and the state is the same."""
    warm, alpha, beta = eddm.warm_start, eddm.alpha, eddm.beta
    var = eddm._error_distances
    ddof, mean = var.ddof, var.mean
    vn, m, big_s = mean.n, mean._mean, var._S
    n, last, errors_seen, top = eddm._n, eddm._last_error, eddm._n_errors, eddm._p2s_prime_max
    drifted, warning = eddm._drift_detected, eddm._warning_detected
    found = []
    seen = -1  # the position of the last outcome counted
    for i in np.flatnonzero(np.asarray(errors) == 1).tolist() + [len(errors) - 1]:
        if i == seen:  # the last outcome was an error: counted already
            break
        if drifted:  # EDDM._reset at the outcome after the drift: a new variance, counters from 0
            vn, m, big_s, n, last, errors_seen, top = 0.0, 0.0, 0.0, 0, 0, 0, -1
            drifted = warning = False
        n += i - seen
        since_reset += i - seen
        seen = i
        if i == len(errors) - 1 and errors[i] != 1:  # the outcomes after the last error
            break
        errors_seen += 1
        distance = n - last
        m_old = m
        vn += 1.0
        m += (1.0 / vn) * (distance - m)
        big_s += 1.0 * (distance - m_old) * (distance - m)
        if n > warm:
            p2s = m + 2 * (big_s / (vn - ddof) if vn > ddof else 0.0) ** 0.5
            if p2s > top:
                top = p2s
            elif errors_seen > warm:
                level = p2s / top
                if level < beta:
                    drifted = True
                elif level < alpha:
                    warning = True
                else:
                    warning = False
        last = n
        if drifted:
            if since_reset > grace:
                found.append(i)
            since_reset = 0
    mean.n, mean._mean, var._S = vn, m, big_s
    eddm._n, eddm._last_error, eddm._n_errors, eddm._p2s_prime_max = n, last, errors_seen, top
    eddm._drift_detected, eddm._warning_detected = drifted, warning
    return found, since_reset


def _adwin_many(adwin: drift.ADWIN, errors: np.ndarray, grace: int, since_reset: int) -> tuple[list[int], int]:
    """River's ``ADWIN.update`` of each error in order, with :meth:`_RiverErrorDetector.update_many`'s estimate
    before and after each update (a detection where it fell is an improvement, logged) and its grace: the same
    calls on ADWIN's window (``_reset`` after a detection, then ``_helper.update``), without the properties and
    ``getattr`` per error (1.37 -> 0.53 us an error in process). The estimate before an update is only needed
    at a detection: an update without one adds one to the window's width and the error to its total (ADWIN's
    ``insert_element``, nothing else), so it is then the width and total read where the window started in this
    batch plus the errors added since, in the same order (not two calls into River per error)."""
    values = errors.tolist()
    helper = adwin._helper
    update = helper.update
    drifted = adwin._drift_detected
    start, width, total = 0, helper.get_width(), helper.get_total()  # the window before outcome ``start``
    counted = 0  # outcomes up to here are in ``since_reset``
    found = []
    for i, x in enumerate(values):
        if drifted:  # ADWIN.update: a detection resets the window first
            adwin._reset()
            helper = adwin._helper
            update = helper.update
            start, width, total = i, helper.get_width(), helper.get_total()
        drifted = update(x)
        if drifted:
            held, before_total = width + (i - start), total
            for value in values[start:i]:
                before_total += value
            before = before_total / held if held else 0.0
            held = helper.get_width()
            after = helper.get_total() / held if held else 0.0
            since_reset += i + 1 - counted
            counted = i + 1
            if after < before:
                log.info("adwin: the error rate fell from %.4f to %.4f (improvement, no alert)", before, after)
            elif since_reset > grace:
                found.append(i)
            since_reset = 0
    adwin._drift_detected = drifted
    return found, since_reset + len(values) - counted


#: River detectors whose updates run inlined (exactly these types: a subclass may change ``update``).
_INLINED: dict[type, Callable[[Any, np.ndarray, int, int], tuple[list[int], int]]] = {
    binary.DDM: _ddm_many,
    binary.EDDM: _eddm_many,
    drift.ADWIN: _adwin_many,
}


def _adwin(alpha: float, arl: float, grace: int) -> _RiverErrorDetector:
    return _RiverErrorDetector("adwin", drift.ADWIN(delta=alpha), 0, None)


def _ddm(alpha: float, arl: float, grace: int) -> _RiverErrorDetector:
    z = float(special.ndtri(1 - alpha))
    return _RiverErrorDetector(
        "ddm", binary.DDM(warm_start=grace, warning_threshold=z - 1, drift_threshold=z), grace, None
    )


def _eddm(alpha: float, arl: float, grace: int) -> _RiverErrorDetector:
    eddm = binary.EDDM(warm_start=EDDM_WARM_ERRORS, alpha=EDDM_WARNING, beta=EDDM_DRIFT)
    return _RiverErrorDetector("eddm", eddm, grace, None)


def _page_hinkley(alpha: float, arl: float, grace: int) -> _RiverErrorDetector:
    threshold = page_hinkley_threshold(max(2.0, arl / REGRESSION_BLOCK), 0.5)
    ph = drift.PageHinkley(min_instances=30, delta=0.5, threshold=threshold, mode="up")
    return _RiverErrorDetector("page_hinkley", ph, grace, (0.0, 1.0), REGRESSION_BLOCK)


#: River error-stream detectors by name: ``(alpha, arl, grace) -> detector`` held to the budget's share.
ERROR_STREAM_FACTORIES: dict[str, Callable[[float, float, int], _RiverErrorDetector]] = {
    "adwin": _adwin,
    "ddm": _ddm,
    "eddm": _eddm,
    "page_hinkley": _page_hinkley,
}


class ErrorStream:
    """The concept-drift detectors of one model's error stream.

    Parameters
    ----------
    task
        ``"binary"``/``"multiclass"`` (errors are 0/1) or ``"regression"`` (errors are absolute errors).
    detectors
        Names from :data:`ERROR_DETECTORS`; those that do not fit the task are skipped.
    alpha
        Level of one test (ADWIN's ``delta`` per check, DDM's one-sided normal level).
    arl
        Outcomes between false alarms of one sequential detector (CUSUM, Page-Hinkley).
    grace
        Outcomes after a reset during which a River detector's alarms are ignored.
    """

    def __init__(
        self,
        task: str,
        detectors: Sequence[str] = ("cusum", "adwin", "ddm", "eddm"),
        alpha: float = 1e-5,
        arl: float = 1e6,
        grace: int = 1000,
    ):
        self.binary = task != "regression"
        self.names = detectors_for_task(task, detectors)
        self.alpha, self.arl = alpha, arl
        self.cusum = BernoulliCUSUM(arl=arl) if "cusum" in self.names else None
        self._river = [ERROR_STREAM_FACTORIES[name](alpha, arl, grace) for name in self.names if name != "cusum"]
        self.outcomes = 0

    def update_many(self, errors: Sequence[float] | np.ndarray) -> list[WindowTest]:
        """Add errors (0/1, or absolute errors for regression); the detections, ``position`` indexing ``errors``."""
        values = np.asarray(errors, dtype=float)
        found: list[WindowTest] = []
        self.outcomes += values.size
        if self.cusum is not None:
            self.cusum.update_many(values)
            for position in self.cusum.detections:
                statistic = self.cusum.threshold  # the CUSUM restarted; it crossed its threshold here
                found.append(
                    WindowTest("cusum", statistic, self.cusum.threshold, math.nan, 1.0, self.outcomes, position)
                )
        for detector in self._river:
            detector.update_many(values)
            for position in detector.detections:
                found.append(WindowTest(detector.name, math.nan, math.nan, math.nan, 1.0, self.outcomes, position))
        return sorted(found, key=lambda t: t.position)

    def statistics(self) -> dict[str, dict[str, float]]:
        """Current statistic and threshold of each detector (for gauges)."""
        out: dict[str, dict[str, float]] = {}
        if self.cusum is not None:
            out["cusum"] = {
                "statistic": self.cusum.statistic,
                "threshold": self.cusum.threshold,
                "baseline": self.cusum.baseline,
            }
        for detector in self._river:
            estimation = getattr(detector.detector, "estimation", math.nan)
            out[detector.name] = {"statistic": float(estimation), "threshold": math.nan}
        return out
