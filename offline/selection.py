"""Model selection on the training data only: hyperparameter search on a validation holdout, then k-fold
cross-validation of every candidate with its best parameters, an optional averaging ensemble of the two
best, and the choice of the model with the best mean CV score.

Everything here sees a bounded sample of the training rows (``search_rows`` of the card); the out-of-fold
predictions it keeps feed the cost-based threshold and the error analysis, so the test set stays locked.

Examples
--------
>>> import pandas as pd
>>> from driftline.models.features import FeatureSchema
>>> rng = np.random.default_rng(0)
>>> X = pd.DataFrame({"x": rng.normal(size=300)})
>>> y = (X["x"] + rng.normal(scale=0.5, size=300) > 0).astype(int).to_numpy()
>>> setup = SelectionSetup(schema=FeatureSchema({"x": "numeric"}), task="binary", metric="accuracy",
...                        labels=[0, 1], folds=3, strategy="stratified", seed=0)
>>> result = select_model(X, y, ["majority", "linear"], setup)
>>> result.chosen.name, [round(r.cv_mean, 1) for r in result.results]
('linear', [0.5, 0.9])
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftline.models.features import FeatureSchema
from driftline.models.specs import Task
from driftline.offline.candidates import AveragingEnsemble, make_estimator, param_grid, predictions
from driftline.offline.metrics import HIGHER_IS_BETTER, score
from driftline.offline.progress import NullProgress, Progress
from driftline.offline.split import Folds, cv_folds, holdout

BASELINE_NAMES = ("majority", "mean")


@dataclass(frozen=True)
class SelectionSetup:
    """What selection needs to know besides the data."""

    schema: FeatureSchema
    task: Task
    metric: str
    labels: list[Any]
    folds: int
    strategy: str
    seed: int
    groups: np.ndarray | None = None
    river_rows: int = 100_000
    ensemble: bool = False

    @property
    def time_ordered(self) -> bool:
        return self.strategy == "time"

    def estimator(self, name: str, params: dict[str, Any]) -> Any:
        return make_estimator(
            name,
            params,
            schema=self.schema,
            task=self.task,
            labels=self.labels,
            seed=self.seed,
            river_rows=self.river_rows,
            time_ordered=self.time_ordered,
        )


@dataclass
class CandidateResult:
    """Search and cross-validation results of one candidate (``oof`` is not serialised)."""

    name: str
    role: str
    params: dict[str, Any]
    search: list[dict[str, Any]]
    cv_scores: list[float]
    seconds: float
    oof: np.ndarray = field(repr=False)

    @property
    def cv_mean(self) -> float:
        return float(np.nanmean(self.cv_scores)) if self.cv_scores else float("nan")

    @property
    def cv_std(self) -> float:
        return float(np.nanstd(self.cv_scores)) if self.cv_scores else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "params": self.params,
            "search": self.search,
            "cv_scores": self.cv_scores,
            "cv_mean": self.cv_mean,
            "cv_std": self.cv_std,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class SelectionResult:
    """Every candidate's results, the chosen one, and which sample rows have out-of-fold predictions."""

    results: list[CandidateResult]
    chosen: CandidateResult
    folds: Folds
    validation_rows: int

    @property
    def covered(self) -> np.ndarray:
        """Positions of the sample predicted out of fold (all of them, except the first block in time order)."""
        return np.unique(np.concatenate([val for _, val in self.folds]))


def baseline_name(task: Task) -> str:
    """``mean`` for regression, ``majority`` otherwise."""
    return "mean" if task == "regression" else "majority"


def candidate_order(task: Task, candidates: Sequence[str]) -> list[str]:
    """Baselines first (majority/mean, linear), then the card's other candidates.

    >>> candidate_order("binary", ["river", "linear", "hist_gradient_boosting"])
    ['majority', 'linear', 'river', 'hist_gradient_boosting']
    """
    return [baseline_name(task), "linear", *[c for c in candidates if c != "linear"]]


def select_model(
    X: pd.DataFrame,
    y: np.ndarray,
    names: Sequence[str],
    setup: SelectionSetup,  # noqa: N803
    progress: Progress | None = None,
) -> SelectionResult:
    """Search, cross-validate and choose among ``names`` on the sample ``X``/``y``."""
    progress = progress or NullProgress()
    n = len(X)
    regression = setup.task == "regression"
    folds = cv_folds(
        n,
        folds=setup.folds,
        strategy=setup.strategy,
        y_codes=y,
        regression=regression,
        seed=setup.seed,
        groups=setup.groups,
    )
    fit_pos, val_pos = holdout(
        n, strategy=setup.strategy, y_codes=y, regression=regression, seed=setup.seed, groups=setup.groups
    )
    grids = {name: param_grid(name, setup.task) for name in names}
    total = sum(len(g) for g in grids.values() if len(g) > 1) + len(names) * len(folds)
    results = []
    with progress.task(f"search + {len(folds)}-fold CV on {n:,} rows", total=total) as advance:
        for name in names:
            started = time.perf_counter()
            search, params = _search(X, y, name, grids[name], setup, fit_pos, val_pos, advance)
            scores, oof = _cross_validate(
                X, y, lambda name=name, params=params: setup.estimator(name, params), folds, setup, advance
            )
            role = "baseline" if name in (*BASELINE_NAMES, "linear") else "candidate"
            results.append(CandidateResult(name, role, params, search, scores, time.perf_counter() - started, oof))
    if setup.ensemble:
        ensemble = _ensemble(results, y, folds, setup)
        if ensemble is not None:
            results.append(ensemble)
    chosen = best(results, setup.metric)
    return SelectionResult(results, chosen, folds, len(val_pos))


def best(results: Sequence[CandidateResult], metric: str) -> CandidateResult:
    """The result with the best mean CV score, never a majority/mean baseline (ties: the earlier one)."""
    eligible = [r for r in results if r.name not in BASELINE_NAMES and np.isfinite(r.cv_mean)]
    if not eligible:
        eligible = list(results)
    sign = 1 if HIGHER_IS_BETTER[metric] else -1
    return max(eligible, key=lambda r: sign * r.cv_mean)


def _score(setup: SelectionSetup, y: np.ndarray, out: np.ndarray) -> float:
    if setup.task == "regression":
        return score(setup.metric, y, pred=out)
    return score(setup.metric, y, proba=out)


def _search(
    X: pd.DataFrame,
    y: np.ndarray,
    name: str,
    grid: list[tuple[str, dict[str, Any]]],  # noqa: N803
    setup: SelectionSetup,
    fit_pos: np.ndarray,
    val_pos: np.ndarray,
    advance: Any,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if len(grid) == 1:
        return [], grid[0][1]
    search = []
    for label, params in grid:
        estimator = setup.estimator(name, params).fit(X.iloc[fit_pos], y[fit_pos])
        value = _score(setup, y[val_pos], predictions(estimator, X.iloc[val_pos], setup.task, len(setup.labels)))
        search.append({"params": label, "validation": value})
        advance(1)
    sign = 1 if HIGHER_IS_BETTER[setup.metric] else -1
    best_index = max(range(len(grid)), key=lambda i: sign * np.nan_to_num(search[i]["validation"], nan=-np.inf))
    return search, grid[best_index][1]


def _empty_oof(n: int, setup: SelectionSetup) -> np.ndarray:
    shape = (n,) if setup.task == "regression" else (n, len(setup.labels))
    return np.full(shape, np.nan)


def _cross_validate(
    X: pd.DataFrame,
    y: np.ndarray,
    factory: Any,
    folds: Folds,  # noqa: N803
    setup: SelectionSetup,
    advance: Any,
) -> tuple[list[float], np.ndarray]:
    oof = _empty_oof(len(X), setup)
    scores = []
    for train_pos, val_pos in folds:
        estimator = factory().fit(X.iloc[train_pos], y[train_pos])
        out = predictions(estimator, X.iloc[val_pos], setup.task, len(setup.labels))
        oof[val_pos] = out
        scores.append(_score(setup, y[val_pos], out))
        advance(1)
    return scores, oof


def _ensemble(
    results: list[CandidateResult], y: np.ndarray, folds: Folds, setup: SelectionSetup
) -> CandidateResult | None:
    """Average the out-of-fold outputs of the two best candidates: the CV of their averaging ensemble."""
    ranked = [r for r in results if r.name not in BASELINE_NAMES]
    sign = 1 if HIGHER_IS_BETTER[setup.metric] else -1
    ranked.sort(key=lambda r: -sign * r.cv_mean)
    if len(ranked) < 2:
        return None
    members = ranked[:2]
    oof = np.mean([m.oof for m in members], axis=0)
    scores = [_score(setup, y[val], oof[val]) for _, val in folds]
    params = {"members": [{"name": m.name, "params": m.params} for m in members]}
    return CandidateResult("ensemble", "ensemble", params, [], scores, sum(m.seconds for m in members), oof)


def build_chosen(result: CandidateResult, setup: SelectionSetup) -> Any:
    """A fresh, unfitted estimator for a chosen result (an :class:`AveragingEnsemble` for the ensemble)."""
    if result.name == "ensemble":
        members = [(m["name"], setup.estimator(m["name"], m["params"])) for m in result.params["members"]]
        return AveragingEnsemble(members, setup.task, len(setup.labels) or None)
    return setup.estimator(result.name, result.params)
