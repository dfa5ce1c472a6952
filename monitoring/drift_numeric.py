"""Data drift of numeric streams: windowed PSI and two-sample Kolmogorov-Smirnov against a reference.

Every ``hop`` events, the last ``window`` events of each feature are compared with the feature's reference:

* **PSI** on bins whose edges are the reference quantiles (deciles). Expected bin fractions come from the
  reference sample, so ties (integer features) are handled. PSI becomes a p-value through its asymptotic law
  ``n_eff * PSI ~ chi2(bins - 1)`` with ``n_eff = n m / (n + m)`` (Yurdakul, 2018), so it is held to the same
  corrected level as every other test; its magnitude (conventionally 0.1 moderate, 0.25 large) is reported.
* **KS**: the two-sample Kolmogorov-Smirnov distance between the window and the reference sample, evaluated on a
  grid of reference quantiles (at most ``grid`` points plus the PSI edges; exact for features with fewer distinct
  values, otherwise a lower bound, hence conservative), with Kolmogorov's p-value and Stephens' finite-sample
  correction. A Wasserstein-1 distance over the reference's range, in reference standard deviations, is
  reported beside it as an effect size.

:class:`NumericDriftBank` runs both tests for many features with a handful of numpy operations per batch (the
monitor's hot path); :class:`NumericDrift` is the same detector for one stream, River style.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> detector = NumericDrift(rng.normal(0, 1, 1000), window=500, hop=250, alpha=1e-5)
>>> stream = np.concatenate([rng.normal(0, 1, 5000), rng.normal(1, 1, 2000)])  # mean shift at 5000
>>> for i, x in enumerate(stream):
...     if detector.update(x).drift_detected:
...         print(f"drift detected at {i} by {sorted(t.test for t in detector.last if t.rejected)}")
...         break
drift detected at 5249 by ['ks', 'psi']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from driftline.monitoring.window import MIN_P_VALUE, LatestTests, WindowTest, hop_chunks

#: Added to every bin count before PSI's logarithms (keeps empty bins finite).
PSI_SMOOTHING = 0.5
#: Reference quantiles the KS distance is evaluated at (plus the PSI edges).
KS_GRID = 256


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two vectors of bin fractions.

    >>> round(psi(np.array([0.5, 0.5]), np.array([0.6, 0.4])), 4)
    0.0405
    """
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def smoothed_fractions(counts: np.ndarray) -> np.ndarray:
    """Bin fractions of ``counts`` with :data:`PSI_SMOOTHING` added to every bin (no empty bin, so PSI is finite).

    >>> smoothed_fractions(np.array([3, 0, 1])).round(3).tolist()
    [0.636, 0.091, 0.273]
    """
    return (counts + PSI_SMOOTHING) / (counts.sum() + PSI_SMOOTHING * counts.size)


def ks_scale(n: np.ndarray | float, m: np.ndarray | float) -> np.ndarray | float:
    """Stephens' scale of a two-sample KS distance for samples of ``n`` and ``m`` values.

    >>> round(float(ks_scale(500, 1000)), 3)
    18.383
    """
    root = np.sqrt(np.asarray(n, float) * m / (np.asarray(n, float) + m))
    return root + 0.12 + 0.11 / root


def psi_edges(reference: NumericReference, min_fraction: float = 0.01) -> np.ndarray:
    """PSI bin edges, bins ``(edge[j-1], edge[j]]``: the interior reference quantiles, or the reference's fixed
    ``edges``, merged left to right until every bin holds at least ``min_fraction`` of the reference sample
    (a nearly empty reference bin would make PSI and its chi-square law explode).

    >>> deciles = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4]  # of an integer feature: repeated values
    >>> psi_edges(NumericReference.of([0, 1, 2, 3, 4] * 2, deciles)).tolist()
    [0.0, 1.0, 2.0, 3.0]
    >>> scores = NumericReference.of([0.47, 0.48, 0.49, 0.72], edges=np.linspace(0.1, 0.9, 9))
    >>> psi_edges(scores).tolist()  # fixed probability deciles, empty ones merged
    [0.5]
    """
    if reference.edges is not None:
        candidates = np.unique(reference.edges)
    else:
        candidates = np.unique(reference.quantiles[1:-1] if reference.quantiles.size > 2 else reference.quantiles)
    sample = reference.sample
    below = np.searchsorted(sample, candidates, "right") / sample.size  # reference mass at or below each edge
    kept: list[float] = []
    last = 0.0
    for edge, mass in zip(candidates.tolist(), below.tolist(), strict=True):
        if mass - last >= min_fraction and 1 - mass >= min_fraction:
            kept.append(edge)
            last = mass
    return np.array(kept)


class GridLookup:
    """``searchsorted(grid_f, x, "left")`` for every feature of a matrix at once, through a lookup table.

    Each feature's range ``[grid[0], grid[-1]]`` is cut into equal cells (the fewest powers of two from
    ``cells`` up to ``max_cells`` that leave at most one grid point per cell); a cell knows how many grid points
    lie before it and its one grid point is compared with directly. Cells still holding several points fall
    back to ``searchsorted`` for the values in them. Same result, a few vectorised operations for all features
    instead of a binary search per value and feature.

    >>> grids = [np.array([0.0, 1.0, 2.0]), np.array([10.0, 10.5, 20.0])]
    >>> x = np.array([[-1.0, 10.0], [1.0, 10.2], [1.5, 30.0]])
    >>> GridLookup(grids).bins(x).tolist()
    [[0, 0], [1, 1], [2, 3]]
    """

    def __init__(self, grids: Sequence[np.ndarray], cells: int = 2048, max_cells: int = 65536):
        self.grids = [np.asarray(g, dtype=float) for g in grids]
        self.low = np.array([g[0] for g in self.grids])
        spans = np.array([g[-1] - g[0] for g in self.grids])
        while True:
            self.cells = cells
            self._inv = np.where(spans > 0, cells / np.where(spans > 0, spans, 1.0), 0.0)
            fullest = max(int(np.bincount(self._cells(g, f)).max()) for f, g in enumerate(self.grids))
            if fullest <= 1 or cells >= max_cells:
                break
            cells *= 2
        base = np.zeros((len(self.grids), cells), dtype=np.int64)
        point = np.full((len(self.grids), cells), np.inf)
        crowded = np.zeros((len(self.grids), cells), dtype=bool)
        for f, grid in enumerate(self.grids):
            cell_of = self._cells(grid, f)
            per_cell = np.bincount(cell_of, minlength=cells)
            base[f] = np.concatenate([[0], np.cumsum(per_cell)[:-1]])
            single = per_cell == 1
            point[f, cell_of[single[cell_of]]] = grid[single[cell_of]]
            crowded[f] = per_cell > 1
        self._base, self._point, self._crowded = base.ravel(), point.ravel(), crowded.ravel()
        self._any_crowded = bool(crowded.any())
        self._offsets = np.arange(len(self.grids), dtype=np.int64) * cells

    def _cells(self, values: np.ndarray, feature: int) -> np.ndarray:
        t = (values - self.low[feature]) * self._inv[feature]
        return np.clip(t, 0, self.cells - 1).astype(np.int64)

    def bins(self, matrix: np.ndarray) -> np.ndarray:
        """Grid bin (number of grid points below) of each value of an ``(n, features)`` matrix without NaN."""
        t = (matrix - self.low) * self._inv
        flat = np.clip(t, 0, self.cells - 1).astype(np.int64) + self._offsets
        idx = self._base[flat] + (matrix > self._point[flat])
        if self._any_crowded:  # per column, no sort of the crowded values' coordinates (np.unique was ~4% of a scorer)
            crowded = self._crowded[flat]
            for f in np.flatnonzero(crowded.any(axis=0)).tolist():
                pick = np.flatnonzero(crowded[:, f])
                idx[pick, f] = np.searchsorted(self.grids[f], matrix[pick, f], "left")
        return idx


@dataclass(frozen=True)
class NumericReference:
    """What a numeric drift test needs of the reference: a sample and the PSI bin quantiles, or fixed bins.

    ``edges`` (PSI bin edges) and ``grid`` (points the KS distance is evaluated at) replace the quantile-based
    ones when the values have a meaningful scale, e.g. probabilities: a change smaller than the grid step is
    then ignored unless it crosses a grid point.
    """

    sample: np.ndarray
    quantiles: np.ndarray
    edges: np.ndarray | None = None
    grid: np.ndarray | None = None

    @classmethod
    def of(
        cls,
        sample: Sequence[float] | np.ndarray,
        quantiles: Sequence[float] | None = None,
        edges: Sequence[float] | np.ndarray | None = None,
        grid: Sequence[float] | np.ndarray | None = None,
    ) -> NumericReference:
        """From a sample and optionally its quantiles (default: deciles of the sample) or fixed bins."""
        values = np.sort(np.asarray(sample, dtype=float))
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError("the reference sample is empty")
        levels = np.quantile(values, np.linspace(0, 1, 11)) if not quantiles else np.asarray(quantiles, float)
        fixed_edges = None if edges is None else np.asarray(edges, dtype=float)
        fixed_grid = None if grid is None else np.unique(np.asarray(grid, dtype=float))
        return cls(values, levels, fixed_edges, fixed_grid)


class NumericDriftBank:
    """PSI and KS tests of several numeric features over one sliding window of events.

    Parameters
    ----------
    references
        Feature name -> :class:`NumericReference`.
    window
        Events per sliding window (a feature's test uses its non-missing values in it).
    hop
        Evaluate every ``hop`` events.
    alpha
        Level of each test (budget-corrected, see :class:`driftline.monitoring.budget.FalseAlarmBudget`).
    grid
        Reference quantiles the KS distance is evaluated at.
    """

    tests_per_feature = 2

    def __init__(
        self,
        references: Mapping[str, NumericReference],
        window: int = 500,
        hop: int = 250,
        alpha: float = 1e-4,
        grid: int = KS_GRID,
    ):
        if not references:
            raise ValueError("no features")
        if not 0 < alpha < 1 or window < 2 or hop < 1:
            raise ValueError("need 0 < alpha < 1, window >= 2 and hop >= 1")
        self.features = list(references)
        self.window, self.hop, self.alpha = window, hop, alpha
        refs = [references[name] for name in self.features]
        edges = [psi_edges(r) for r in refs]
        levels = np.linspace(0, 1, grid + 1)
        self._grids = [
            np.unique(
                np.concatenate([np.quantile(r.sample, levels, method="inverted_cdf") if r.grid is None else r.grid, e])
            )
            for r, e in zip(refs, edges, strict=True)
        ]
        n_features = len(refs)
        width = max(g.size for g in self._grids) + 1  # fine bins 0..K: bin k holds (grid[k-1], grid[k]]
        self._missing_col = width
        self._cols = width + 1
        self._psi_bins = np.array([e.size + 1 for e in edges])
        psi_width = int(self._psi_bins.max())
        self.m = np.array([r.sample.size for r in refs], dtype=float)
        self._ref_cdf = np.ones((n_features, width))
        self._steps = np.zeros((n_features, width))
        self._psi_index = np.zeros((n_features, width), dtype=np.int64)
        self._expected = np.ones((n_features, psi_width))
        self._psi_valid = np.zeros((n_features, psi_width), dtype=bool)
        for f, (ref, grid_f, edges_f) in enumerate(zip(refs, self._grids, edges, strict=True)):
            k = grid_f.size
            self._ref_cdf[f, :k] = np.searchsorted(ref.sample, grid_f, "right") / ref.sample.size
            self._steps[f, : k - 1] = np.diff(grid_f)
            scale = float(np.std(ref.sample))
            self._steps[f] /= scale if scale > 0 else 1.0
            psi_of_bin = np.append(np.searchsorted(edges_f, grid_f, "left"), edges_f.size)
            self._psi_index[f, : k + 1] = f * psi_width + psi_of_bin
            self._psi_index[f, k + 1 :] = f * psi_width + edges_f.size
            bins = edges_f.size + 1
            ref_bins = np.bincount(np.searchsorted(edges_f, ref.sample, "left"), minlength=bins)
            self._expected[f, :bins] = smoothed_fractions(ref_bins)
            self._psi_valid[f, :bins] = True
        self._psi_width = psi_width
        self._psi_index_flat = self._psi_index.ravel()
        self._psi_cells = n_features * psi_width
        self._psi_mask = self._psi_valid.astype(float)
        self._psi_df = np.maximum(self._psi_bins - 1, 1)
        self._psi_testable = self._psi_bins > 1
        self._psi_critical = special.chdtri(self._psi_df, alpha)
        self._ks_critical = float(special.kolmogi(alpha))
        self._lookup = GridLookup(self._grids)
        self._offsets = np.arange(n_features, dtype=np.int64) * self._cols
        self._ring = np.tile(self._offsets + self._missing_col, (window, 1))
        self.counts = np.zeros((n_features, self._cols), dtype=np.int64)
        self.counts[:, self._missing_col] = window
        self._pos = 0
        self.seen = 0
        n0 = np.zeros(n_features)
        self.statistics: dict[str, np.ndarray] = {
            "psi": n0.copy(),
            "ks": n0.copy(),
            "wasserstein": n0.copy(),
            "psi_p_value": np.ones(n_features),
            "ks_p_value": np.ones(n_features),
            "psi_threshold": np.full(n_features, math.inf),
            "ks_threshold": np.full(n_features, math.inf),
            "psi_score": n0.copy(),
            "ks_score": n0.copy(),
            "samples": n0.copy(),
        }
        self.evaluations: list[tuple[int, dict[str, np.ndarray]]] = []

    def bin_indices(self, matrix: np.ndarray) -> np.ndarray:
        """Flat column index of each value of an ``(events, features)`` matrix (NaN -> the missing column)."""
        missing = np.isnan(matrix)
        has_missing = bool(missing.any())
        if has_missing:
            matrix = np.where(missing, self._lookup.low, matrix)
        idx = self._lookup.bins(matrix)
        if has_missing:
            idx[missing] = self._missing_col
        return idx + self._offsets

    def update_many(self, matrix: np.ndarray) -> NumericDriftBank:
        """Add an ``(events, features)`` matrix (columns in :attr:`features` order, NaN = missing).

        :attr:`evaluations` lists ``(row, statistics)`` of the tests run during this call; :attr:`statistics`
        holds the latest ones.
        """
        matrix = np.asarray(matrix, dtype=float).reshape(-1, len(self.features))
        self.evaluations = []
        if matrix.shape[0] == 0:
            return self
        idx = self.bin_indices(matrix)
        for start, stop, evaluate in hop_chunks(self.seen, matrix.shape[0], self.hop):
            self._push(idx[start:stop])
            if evaluate:
                self.statistics = self._evaluate()
                self.evaluations.append((stop - 1, self.statistics))
        self.seen += matrix.shape[0]
        return self

    def prime(self, matrix: np.ndarray) -> NumericDriftBank:
        """Fill the window with past rows without testing (after a change of reference)."""
        matrix = np.asarray(matrix, dtype=float).reshape(-1, len(self.features))
        if matrix.shape[0]:
            self._push(self.bin_indices(matrix[-self.window :]))
            self.seen += matrix.shape[0]
        return self

    def tests(
        self, feature: int, statistics: dict[str, np.ndarray] | None = None, position: int = -1
    ) -> list[WindowTest]:
        """The PSI and KS tests of feature number ``feature`` in ``statistics`` (default: the latest)."""
        s = self.statistics if statistics is None else statistics
        samples = int(s["samples"][feature])
        return [
            WindowTest(
                name,
                float(s[name][feature]),
                float(s[f"{name}_threshold"][feature]),
                float(s[f"{name}_p_value"][feature]),
                float(s[f"{name}_score"][feature]),
                samples,
                position,
            )
            for name in ("psi", "ks")
        ]

    def distributions(self, feature: int) -> dict[str, list[float]]:
        """Reference and current window of feature number ``feature`` as the tests see them.

        ``edges``: the PSI bin edges (bins ``(edge[j-1], edge[j]]``, open at both ends); ``reference`` and
        ``window``: the fraction of values in each bin (the reference's with PSI's smoothing; ``window`` is all
        zeros for an empty window); ``grid``, ``reference_cdf`` and ``window_cdf``: both empirical CDFs at the
        points the KS distance is taken at.

        >>> bank = NumericDriftBank({"x": NumericReference.of(np.arange(100.0))}, window=10, hop=10)
        >>> d = bank.update_many(np.full((10, 1), 95.0)).distributions(0)
        >>> len(d["edges"]) + 1 == len(d["reference"]) == len(d["window"]), d["window"][-1], d["window_cdf"][-1]
        (True, 1.0, 1.0)
        """
        grid = self._grids[feature]
        k = grid.size
        counts = self.counts[feature, : self._missing_col].astype(float)
        n = float(counts.sum())
        bins = int(self._psi_bins[feature])
        index = self._psi_index[feature] - feature * self._psi_width
        window = np.bincount(index, weights=counts, minlength=self._psi_width)[:bins]
        edges = grid[np.flatnonzero(np.diff(index[: k + 1]))]
        return {
            "edges": edges.tolist(),
            "reference": self._expected[feature, :bins].tolist(),
            "window": (window / n if n else window).tolist(),
            "grid": grid.tolist(),
            "reference_cdf": self._ref_cdf[feature, :k].tolist(),
            "window_cdf": (np.cumsum(counts)[:k] / n if n else np.zeros(k)).tolist(),
        }

    def _push(self, idx: np.ndarray) -> None:
        k = idx.shape[0]
        size = self.counts.size
        if k >= self.window:
            self._ring[:] = idx[-self.window :]
            self.counts = np.bincount(self._ring.ravel(), minlength=size).reshape(self.counts.shape)
            self._pos = 0
            return
        slots = np.arange(self._pos, self._pos + k) % self.window
        old = self._ring[slots]
        delta = np.bincount(idx.ravel(), minlength=size) - np.bincount(old.ravel(), minlength=size)
        self.counts += delta.reshape(self.counts.shape)
        self._ring[slots] = idx
        self._pos = (self._pos + k) % self.window

    def _evaluate(self) -> dict[str, np.ndarray]:
        counts = self.counts[:, : self._missing_col]
        n = self.window - self.counts[:, self._missing_col].astype(float)
        present = n > 0
        safe_n = np.maximum(n, 1.0)
        gaps = np.cumsum(counts, axis=1) / safe_n[:, None]
        gaps -= self._ref_cdf
        np.abs(gaps, out=gaps)
        distance = gaps.max(axis=1) * present
        scale = ks_scale(safe_n, self.m)
        p_ks = np.minimum(1.0, special.kolmogorov(scale * distance))
        binned = np.bincount(self._psi_index_flat, weights=counts.ravel(), minlength=self._psi_cells)
        actual = binned.reshape(self._expected.shape) + PSI_SMOOTHING
        actual /= (safe_n + PSI_SMOOTHING * self._psi_bins)[:, None]
        terms = (actual - self._expected) * np.log(actual / self._expected)
        value = (terms * self._psi_mask).sum(axis=1) * present
        n_eff = safe_n * self.m / (safe_n + self.m)
        p_psi = np.where(self._psi_testable, special.chdtrc(self._psi_df, n_eff * value), 1.0)
        log_alpha = math.log(self.alpha)
        return {
            "psi": value,
            "ks": distance,
            "psi_p_value": p_psi,
            "ks_p_value": p_ks,
            "psi_threshold": np.where(present & self._psi_testable, self._psi_critical / n_eff, math.inf),
            "ks_threshold": np.where(present, self._ks_critical / scale, math.inf),
            "psi_score": np.log(np.maximum(p_psi, MIN_P_VALUE)) / log_alpha,
            "ks_score": np.log(np.maximum(p_ks, MIN_P_VALUE)) / log_alpha,
            "wasserstein": (gaps * self._steps).sum(axis=1),
            "samples": n,
        }


class NumericDrift(LatestTests):
    """Windowed PSI and KS drift tests of one numeric stream (a one-feature :class:`NumericDriftBank`).

    Parameters
    ----------
    reference_sample
        Reference values (a profile's ``sample`` is enough).
    quantiles
        Reference quantiles whose interior values are the PSI edges. Default: deciles of the sample.
    window, hop, alpha
        As in :class:`NumericDriftBank`.
    """

    def __init__(
        self,
        reference_sample: Sequence[float] | np.ndarray,
        quantiles: Sequence[float] | None = None,
        window: int = 500,
        hop: int = 250,
        alpha: float = 1e-4,
    ):
        self._bank = NumericDriftBank({"x": NumericReference.of(reference_sample, quantiles)}, window, hop, alpha)
        self.tests: list[WindowTest] = []
        self._last: list[WindowTest] = []

    @property
    def wasserstein(self) -> float:
        """Wasserstein-1 distance of the latest evaluation, in reference standard deviations."""
        return float(self._bank.statistics["wasserstein"][0])

    def update(self, x: float) -> NumericDrift:
        """Add one value (NaN counts as missing)."""
        return self.update_many(np.array([x], dtype=float))

    def update_many(self, values: Sequence[float] | np.ndarray) -> NumericDrift:
        """Add values; :attr:`tests` holds the evaluations this call ran (``position`` indexes ``values``)."""
        self._bank.update_many(np.asarray(values, dtype=float).reshape(-1, 1))
        self.tests = []
        for position, statistics in self._bank.evaluations:
            self._last = self._bank.tests(0, statistics, position)
            self.tests.extend(self._last)
        return self
