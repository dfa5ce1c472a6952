"""Final evaluation: a decision threshold from the card's error costs, bootstrap 95% confidence intervals on
the test set (paired across models, so the improvement over the baseline gets its own interval), the
expected cost, and the go/no-go verdict.

Examples
--------
>>> import numpy as np
>>> y = np.array([0, 0, 0, 1, 1, 1])
>>> p = np.array([0.1, 0.2, 0.45, 0.4, 0.7, 0.9])
>>> threshold, cost = choose_threshold(y, p, cost_fp=1.0, cost_fn=1.0)
>>> round(threshold, 3), round(cost, 4)
(0.575, 0.1667)
>>> round(choose_threshold(y, p, cost_fp=1.0, cost_fn=10.0)[0], 3)
0.3
>>> model, base = Estimate(0.9, 0.85, 0.95), Estimate(0.5, 0.45, 0.55)
>>> decide_verdict("f1", model, base, Estimate(0.4, 0.3, 0.5), min_improvement=0.05, min_score=0.8).go
True
>>> decide_verdict("rmse", Estimate(3.0, 2.5, 3.5), Estimate(3.1, 2.6, 3.6), Estimate(0.1, -0.1, 0.3),
...                min_improvement=0.0, min_score=None).reasons[0]
'the 95% CI of the improvement over the baseline [-0.1, 0.3] does not clear 0'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from driftline.offline.metrics import HIGHER_IS_BETTER, WeightedMetric, confusion, decide, metric_function


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap 95% interval."""

    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """Go or no-go, and why."""

    go: bool
    reasons: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"decision": "go" if self.go else "no-go", "go": self.go, "reasons": self.reasons}


def cost_curve(
    y: np.ndarray, p_positive: np.ndarray, thresholds: np.ndarray, *, cost_fp: float, cost_fn: float
) -> np.ndarray:
    """Mean cost per row ``(cost_fp * FP + cost_fn * FN) / rows`` when ``P(positive) >= t`` is called positive,
    for every ``t`` of ``thresholds`` (one sort, no loop over thresholds).

    >>> cost_curve(np.array([0, 1, 1]), np.array([0.2, 0.4, 0.9]), np.array([0.0, 0.3, 0.5, 1.0]),
    ...            cost_fp=1.0, cost_fn=2.0).round(3).tolist()
    [0.333, 0.0, 0.667, 1.333]
    """
    y = np.asarray(y).astype(bool)
    sorted_p = np.sort(np.asarray(p_positive, dtype=float), kind="stable")
    sorted_y = y[np.argsort(np.asarray(p_positive, dtype=float), kind="stable")]
    below = np.searchsorted(sorted_p, thresholds, side="left")  # rows predicted negative at each threshold
    false_negatives = np.concatenate([[0], np.cumsum(sorted_y)])[below]
    false_positives = (~y).sum() - (below - false_negatives)
    return (cost_fp * false_positives + cost_fn * false_negatives) / max(len(y), 1)


def choose_threshold(y: np.ndarray, p_positive: np.ndarray, *, cost_fp: float, cost_fn: float) -> tuple[float, float]:
    """The threshold on ``P(positive)`` minimising mean cost ``cost_fp * FP + cost_fn * FN`` (ties: nearest 0.5).

    Every distinct cut of the scores is tried (midpoints between consecutive distinct scores, and the two
    extremes), so the minimum is exact on the given rows. Returns ``(threshold, expected cost per row)``;
    run it on out-of-fold predictions, never on the test set.
    """
    distinct = np.unique(np.asarray(p_positive, dtype=float))
    cuts = np.concatenate([[0.0], (distinct[:-1] + distinct[1:]) / 2, [np.nextafter(distinct[-1], np.inf)]])
    costs = cost_curve(y, p_positive, cuts, cost_fp=cost_fp, cost_fn=cost_fn)
    best = min(range(len(cuts)), key=lambda i: (round(float(costs[i]), 12), abs(cuts[i] - 0.5)))
    return float(cuts[best]), float(costs[best])


def expected_cost(
    task: str, y: np.ndarray, out: np.ndarray, costs: Mapping[str, float], threshold: float | None = None
) -> float:
    """Mean cost per row under the card's error costs.

    >>> expected_cost("regression", np.array([1.0, 1.0]), np.array([2.0, 0.0]),
    ...               {"over_prediction": 1.0, "under_prediction": 3.0})
    2.0
    """
    if task == "regression":
        error = np.asarray(out, dtype=float) - np.asarray(y, dtype=float)
        return float(
            np.mean(
                costs["over_prediction"] * np.clip(error, 0, None)
                + costs["under_prediction"] * np.clip(-error, 0, None)
            )
        )
    decided = decide(out, threshold)
    if task == "binary":
        fp = np.sum((decided == 1) & (y == 0))
        fn = np.sum((decided == 0) & (y == 1))
        return float((costs["false_positive"] * fp + costs["false_negative"] * fn) / len(y))
    return float(costs["misclassification"] * np.mean(decided != y))


def bootstrap(
    functions: Mapping[str, WeightedMetric], rows: int, resamples: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Each metric on ``resamples`` bootstrap resamples of the ``rows`` rows — the same resamples for every
    metric, so differences between models are paired.

    >>> draws = bootstrap({"mean": lambda w: float(np.average(np.arange(4), weights=w))}, 4, 200)
    >>> draws["mean"].shape, bool(draws["mean"].min() >= 0)
    ((200,), True)
    """
    rng = np.random.default_rng(seed)
    draws = {name: np.empty(resamples) for name in functions}
    for i in range(resamples):
        weights = np.bincount(rng.integers(0, rows, rows), minlength=rows).astype(float)
        for name, fn in functions.items():
            draws[name][i] = fn(weights)
    return draws


def interval(value: float, draws: np.ndarray) -> Estimate:
    """Percentile 95% interval of bootstrap draws around a point estimate (NaN draws ignored)."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return Estimate(value, math.nan, math.nan)
    low, high = np.percentile(finite, [2.5, 97.5])
    return Estimate(float(value) + 0.0, float(low) + 0.0, float(high) + 0.0)  # + 0.0 turns -0.0 into 0.0


def improvement_sign(metric: str) -> int:
    """+1 when higher is better, -1 otherwise: ``sign * (model - baseline)`` is positive when the model is better."""
    return 1 if HIGHER_IS_BETTER[metric] else -1


def evaluate_models(
    metric: str,
    y: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    *,
    task: str,
    thresholds: Mapping[str, float | None],
    baseline: str | float,
    primary: str,
    resamples: int,
    seed: int = 0,
) -> tuple[dict[str, Estimate], Estimate]:
    """Test-set estimates of every model in ``outputs`` and of ``primary``'s improvement over ``baseline``
    (a model name in ``outputs`` or a fixed number), all from one set of paired bootstrap resamples."""
    functions = {
        name: metric_function(metric, y, **_keyword(task, out), threshold=thresholds.get(name))
        for name, out in outputs.items()
    }
    points = {name: fn(None) for name, fn in functions.items()}
    draws = bootstrap(functions, len(y), resamples, seed)
    estimates = {name: interval(points[name], draws[name]) for name in functions}
    sign = improvement_sign(metric)
    if isinstance(baseline, str):
        gain_draws = sign * (draws[primary] - draws[baseline])
        gain_point = sign * (points[primary] - points[baseline])
    else:
        gain_draws = sign * (draws[primary] - float(baseline))
        gain_point = sign * (points[primary] - float(baseline))
    return estimates, interval(gain_point, gain_draws)


def best_constant_baseline(metric: str, y_train: np.ndarray) -> tuple[str, dict[str, float]]:
    """The constant predictor a binary model must beat: ``majority`` (the training prior) or ``always_positive``,
    whichever scores better on the training labels, and both scores. Against the majority class alone a binary
    F1 is 0 (it never predicts the positive class), so any model, even a useless one, would look like a gain.

    >>> best_constant_baseline("f1", np.array([0, 0, 0, 1, 1]))
    ('always_positive', {'majority': 0.0, 'always_positive': 0.5714285714285714})
    >>> best_constant_baseline("accuracy", np.array([0, 0, 0, 1, 1]))[0]
    'majority'
    """
    y = np.asarray(y_train, dtype=int)
    prior = np.bincount(y, minlength=2)[:2] / max(len(y), 1)
    constant = {
        "majority": np.tile(prior, (len(y), 1)),
        "always_positive": np.tile([0.0, 1.0], (len(y), 1)),
    }
    scores = {name: float(metric_function(metric, y, proba=p)(None)) for name, p in constant.items()}
    sign = improvement_sign(metric)
    best = max(scores, key=lambda name: sign * scores[name] if math.isfinite(scores[name]) else -math.inf)
    return best, scores


def decide_verdict(
    metric: str,
    model: Estimate,
    baseline: Estimate | None,
    improvement: Estimate,
    *,
    min_improvement: float,
    min_score: float | None,
) -> Verdict:
    """GO when the improvement's CI lies above ``min_improvement`` and the metric's CI clears ``min_score``."""
    reasons = []
    go = True
    low, high = improvement.ci_low, improvement.ci_high
    if not (math.isfinite(low) and low > min_improvement):
        go = False
        reasons.append(
            f"the 95% CI of the improvement over the baseline [{low:.4g}, {high:.4g}] "
            f"does not clear {min_improvement:g}"
        )
    else:
        reasons.append(
            f"the 95% CI of the improvement over the baseline [{low:.4g}, {high:.4g}] clears {min_improvement:g}"
        )
    if min_score is not None:
        higher = HIGHER_IS_BETTER[metric]
        bound = model.ci_low if higher else model.ci_high
        ok = math.isfinite(bound) and (bound >= min_score if higher else bound <= min_score)
        side = "lower" if higher else "upper"
        reasons.append(
            f"test {metric} CI {side} bound {bound:.4g} {'meets' if ok else 'misses'} "
            f"the card's {'minimum' if higher else 'maximum'} {min_score:g}"
        )
        go = go and ok
    return Verdict(go, reasons)


def secondary_metrics(task: str, y: np.ndarray, out: np.ndarray, threshold: float | None) -> dict[str, Any]:
    """Point values of the other metrics of the task, and the confusion matrix for classification."""
    if task == "regression":
        error = out - y
        total = float(np.sum((y - y.mean()) ** 2))
        return {
            "rmse": float(np.sqrt(np.mean(error**2))),
            "mae": float(np.mean(np.abs(error))),
            "r2": float(1 - np.sum(error**2) / total) if total else math.nan,
        }
    values: dict[str, Any] = {
        name: metric_function(name, y, proba=out, threshold=threshold)(None) for name in ("accuracy", "f1", "roc_auc")
    }
    values["confusion_matrix"] = confusion(y, decide(out, threshold), out.shape[1]).astype(int).tolist()
    return values


def _keyword(task: str, out: np.ndarray) -> dict[str, np.ndarray]:
    return {"pred": out} if task == "regression" else {"proba": out}
