"""Champion/challenger evaluation: paired losses on the same labels, a significance test, a promotion policy.

Both models score the same events; when a label arrives, :func:`label_loss` gives each model's loss and
:class:`PairedComparison` keeps the last ``window`` pairs. Its :meth:`~PairedComparison.result` tests whether
the mean losses differ: a sign test when every loss is 0/1, otherwise a paired t-test (or Wilcoxon). The
streaming learner stores the result with :func:`save_comparison` under ``{prefix}compare:{name}``;
``driftline models compare`` reads it with :func:`load_comparison`.

A challenger is anything with ``score_batch(rows) -> list[Scored]`` (:class:`Challenger`):
:class:`RiverChallenger` wraps a River model, :class:`SklearnChallenger` a fitted scikit-learn pipeline that
takes a DataFrame; :func:`as_challenger` picks the right one.

Examples
--------
>>> comparison = PairedComparison(window=100)
>>> for i in range(60):
...     _ = comparison.update(champion_loss=float(i % 2), challenger_loss=float(i % 6 == 0))
>>> r = comparison.result()
>>> r["test"], r["n"], r["winner"], r["p_value"] < 0.05
('sign', 60, 'challenger', True)
>>> PromotionPolicy(min_labels=50, alpha=0.05, min_improvement=0.1).decide(r).promote
True
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from scipy import stats

from driftline.contract import keys
from driftline.models.scoring import Scored, failed, from_probabilities, from_value, native, score_batch

TestName = Literal["auto", "sign", "ttest", "wilcoxon"]
LossKind = Literal["log", "zero_one", "absolute", "squared"]

#: Probabilities are clamped to [EPS, 1] in the log loss, so a certain mistake costs -log(EPS) ~ 16.1.
EPS = 1e-7


def class_key(task: str, y: Any) -> str:
    """The probabilities key of class ``y``: binary 0/1/False/True become ``'False'``/``'True'``.

    >>> class_key("binary", 1), class_key("binary", False), class_key("multiclass", 2), class_key("binary", "yes")
    ('True', 'False', '2', 'yes')
    """
    if task == "binary" and isinstance(y, bool | int | float | np.number) and y in (0, 1):
        return str(bool(y))
    return str(y)


def label_loss(task: str, y_true: Any, scored: Scored, kind: LossKind | None = None) -> float:
    """Loss of one scored row against its label (lower is better).

    ``kind`` defaults to ``'log'`` for classifiers (probability of the true class, clamped at :data:`EPS`) and
    ``'absolute'`` for regression; ``'zero_one'`` and ``'squared'`` are the alternatives. A row without a
    prediction (untrained, or failed) costs the maximum: ``-log(EPS)`` or 1, and ``ValueError`` in regression.

    >>> s = Scored(True, {"True": 0.8, "False": 0.2}, 0.8, 0.8)
    >>> round(label_loss("binary", True, s), 4), label_loss("binary", 0, s, "zero_one")
    (0.2231, 1.0)
    >>> label_loss("regression", 3.0, Scored(2.5, None, 2.5, None), "squared")
    0.25
    """
    if task == "regression":
        if scored.prediction is None:
            raise ValueError(f"no prediction to compare with the label ({scored.error or 'not scored'})")
        error = float(scored.prediction) - float(y_true)
        return abs(error) if kind in (None, "absolute") else error * error
    key = class_key(task, y_true)
    if kind == "zero_one":
        return float(scored.prediction is None or class_key(task, scored.prediction) != key)
    if kind not in (None, "log"):
        raise ValueError(f"loss {kind!r} does not apply to {task}")
    p = (scored.probabilities or {}).get(key, 0.0)
    return -math.log(min(1.0, max(EPS, p)))


def _finite(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


class PairedComparison:
    """Losses of a champion and a challenger on the same labels, over a rolling window.

    Parameters
    ----------
    window
        How many of the latest label pairs are compared.
    alpha
        Significance level for ``winner``.
    test
        ``'auto'`` (sign test when every loss is 0/1, else paired t-test), ``'sign'``, ``'ttest'`` or
        ``'wilcoxon'``.
    """

    def __init__(self, window: int = 1000, alpha: float = 0.05, test: TestName = "auto"):
        if window < 2 or not 0 < alpha < 1 or test not in ("auto", "sign", "ttest", "wilcoxon"):
            raise ValueError("need window >= 2, 0 < alpha < 1 and test in auto|sign|ttest|wilcoxon")
        self.window, self.alpha, self.test = window, alpha, test
        self.champion: deque[float] = deque(maxlen=window)
        self.challenger: deque[float] = deque(maxlen=window)
        self.seen = 0

    def update(self, champion_loss: float, challenger_loss: float) -> PairedComparison:
        """Add the two models' losses on one label."""
        if not (math.isfinite(champion_loss) and math.isfinite(challenger_loss)):
            raise ValueError("losses must be finite numbers")
        self.champion.append(float(champion_loss))
        self.challenger.append(float(challenger_loss))
        self.seen += 1
        return self

    def state(self) -> dict[str, Any]:
        """Everything needed to continue the comparison elsewhere (JSON-serialisable).

        >>> pair = PairedComparison(window=3).update(1, 0).update(0, 0)
        >>> PairedComparison.from_state(pair.state()).result() == pair.result()
        True
        """
        return {
            "window": self.window,
            "alpha": self.alpha,
            "test": self.test,
            "seen": self.seen,
            "champion": list(self.champion),
            "challenger": list(self.challenger),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PairedComparison:
        comparison = cls(state["window"], state["alpha"], state["test"])
        comparison.champion.extend(state["champion"])
        comparison.challenger.extend(state["challenger"])
        comparison.seen = state["seen"]
        return comparison

    def result(self) -> dict[str, Any]:
        """Mean losses over the window, their difference (challenger - champion), the test and the winner."""
        champ, chall = np.asarray(self.champion), np.asarray(self.challenger)
        n = int(champ.size)
        test = self.test
        if test == "auto":
            test = "sign" if n and np.isin(np.concatenate([champ, chall]), (0.0, 1.0)).all() else "ttest"
        statistic, p_value = _paired_test(test, champ, chall) if n >= 2 else (None, None)
        difference = float(chall.mean() - champ.mean()) if n else None
        winner = None
        if p_value is not None and p_value < self.alpha and difference:
            winner = "challenger" if _direction(test, champ, chall) < 0 else "champion"
        return {
            "n": n,
            "seen": self.seen,
            "window": self.window,
            "champion_loss": float(champ.mean()) if n else None,
            "challenger_loss": float(chall.mean()) if n else None,
            "difference": difference,
            "test": test,
            "statistic": _finite(statistic),
            "p_value": _finite(p_value),
            "alpha": self.alpha,
            "winner": winner,
        }


def _paired_test(test: str, champ: np.ndarray, chall: np.ndarray) -> tuple[float | None, float | None]:
    diff = chall - champ
    if not diff.any():
        return 0.0, 1.0
    if test == "sign":
        better = int((diff < 0).sum())
        discordant = int((diff != 0).sum())
        return float(better), float(stats.binomtest(better, discordant, 0.5).pvalue)
    if test == "wilcoxon":
        res = stats.wilcoxon(chall, champ, zero_method="wilcox")
        return float(res.statistic), float(res.pvalue)
    if np.ptp(diff) == 0:  # every difference equal and non-zero: a certain difference
        return math.copysign(math.inf, float(diff[0])), 0.0
    res = stats.ttest_rel(chall, champ)
    return float(res.statistic), float(res.pvalue)


def _direction(test: str, champ: np.ndarray, chall: np.ndarray) -> float:
    diff = chall - champ
    if test == "wilcoxon" and float(np.median(diff)) != 0:
        return float(np.median(diff))
    return float(diff.mean())


@dataclass(frozen=True)
class PromotionDecision:
    """Whether to promote the challenger, and why."""

    promote: bool
    reason: str


@dataclass(frozen=True)
class PromotionPolicy:
    """Promote automatically after ``min_labels`` paired labels when the challenger wins at ``alpha`` and its
    mean loss is at least ``min_improvement`` (a fraction, e.g. 0.02 = 2%) below the champion's.

    >>> PromotionPolicy(min_labels=1000).decide({"n": 10, "winner": "challenger"}).reason
    'only 10 paired labels (< 1000)'
    """

    min_labels: int = 1000
    alpha: float = 0.05
    min_improvement: float = 0.0

    def decide(self, result: Mapping[str, Any]) -> PromotionDecision:
        """Apply the policy to a :meth:`PairedComparison.result`."""
        n = int(result.get("n") or 0)
        if n < self.min_labels:
            return PromotionDecision(False, f"only {n} paired labels (< {self.min_labels})")
        p_value = result.get("p_value")
        if p_value is None or p_value >= self.alpha:
            return PromotionDecision(False, f"difference not significant (p={p_value}, alpha={self.alpha})")
        champ, chall = float(result["champion_loss"]), float(result["challenger_loss"])
        if chall >= champ:
            return PromotionDecision(False, f"challenger loss {chall:.4g} is not below champion's {champ:.4g}")
        improvement = (champ - chall) / champ
        if improvement < self.min_improvement:
            return PromotionDecision(
                False, f"improvement {improvement:.2%} is below the required {self.min_improvement:.2%}"
            )
        return PromotionDecision(True, f"challenger loss {improvement:.2%} lower (p={p_value:.3g}, n={n})")


# --- challengers ----------------------------------------------------------------------------------
@runtime_checkable
class Challenger(Protocol):
    """Anything that scores a batch of feature dicts like :func:`driftline.models.scoring.score_batch`."""

    task: str

    def score_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[Scored]: ...


@dataclass
class RiverChallenger:
    """A River model (or pipeline) as a challenger."""

    model: Any
    task: str

    def score_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[Scored]:
        """Score with :func:`driftline.models.scoring.score_batch`."""
        return score_batch(self.model, self.task, rows)


@dataclass
class SklearnChallenger:
    """A fitted scikit-learn pipeline that takes a DataFrame (as the offline module exports it).

    Missing features become NaN/None columns (the pipeline's imputers handle them). Binary classes 0/1 are
    reported as ``'False'``/``'True'`` keys, like River's binary models, so losses compare on the same keys.

    >>> from sklearn.linear_model import LogisticRegression
    >>> frame = pd.DataFrame({"x": [0.0, 1.0, 0.1, 0.9]})
    >>> clf = LogisticRegression().fit(frame, [0, 1, 0, 1])
    >>> SklearnChallenger(clf, "binary").score_batch([{"x": 1.0}])[0].prediction
    True
    """

    pipeline: Any
    task: str
    columns: list[str] | None = None

    def _frame(self, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
        columns = self.columns or list(getattr(self.pipeline, "feature_names_in_", [])) or None
        return pd.DataFrame.from_records(list(rows), columns=columns)

    def _score(self, frame: pd.DataFrame) -> list[Scored]:
        if self.task == "regression":
            return [from_value(v) for v in np.asarray(self.pipeline.predict(frame), dtype=float).tolist()]
        classes = [native(c) for c in self.pipeline.classes_]
        if self.task == "binary" and set(classes) <= {0, 1}:
            classes = [bool(c) for c in classes]
        matrix = np.asarray(self.pipeline.predict_proba(frame), dtype=float)
        return [from_probabilities(self.task, dict(zip(classes, line, strict=True))) for line in matrix.tolist()]

    def score_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[Scored]:
        """Score all rows in one ``predict_proba``/``predict`` call; on failure, row by row."""
        if not rows:
            return []
        try:
            return self._score(self._frame(rows))
        except Exception:  # noqa: BLE001 - retried row by row so one bad row does not sink the batch
            out = []
            for row in rows:
                try:
                    out.extend(self._score(self._frame([row])))
                except Exception as exc:  # noqa: BLE001 - reported on the row
                    out.append(failed(exc))
            return out


@dataclass(frozen=True)
class OfflineChallenger:
    """The offline module's chosen model (``model.skops``: preprocessing + estimator, class ``labels``).

    Binary probabilities are reported as ``'True'``/``'False'`` for ``label == positive_class``, the space
    the River champion learns in, so both are scored on the same joined labels.
    """

    model: Any
    task: str
    positive_class: Any = None

    def score_batch(self, rows: Sequence[Mapping[str, Any]]) -> list[Scored]:
        if not rows:
            return []
        frame = pd.DataFrame.from_records(list(rows), columns=getattr(self.model, "features", None))
        if self.task == "regression":
            return [from_value(v) for v in np.asarray(self.model.predict_proba(frame), dtype=float).tolist()]
        proba = np.asarray(self.model.predict_proba(frame), dtype=float)
        labels = [native(label) for label in self.model.labels]
        if self.task == "binary":
            positive = next((i for i, c in enumerate(labels) if str(c) == str(self.positive_class)), len(labels) - 1)
            return [from_probabilities("binary", {True: p, False: 1.0 - p}) for p in proba[:, positive].tolist()]
        return [from_probabilities(self.task, dict(zip(labels, line, strict=True))) for line in proba.tolist()]


def as_challenger(model: Any, task: str, positive_class: Any = None) -> Challenger:
    """Wrap ``model``: River models (``learn_one``) in :class:`RiverChallenger`, the offline module's trained
    models (``labels`` + ``predict_proba``) in :class:`OfflineChallenger`, fitted scikit-learn estimators
    (``fit`` + ``predict``) in :class:`SklearnChallenger`.

    >>> from river import linear_model
    >>> type(as_challenger(linear_model.LinearRegression(), "regression")).__name__
    'RiverChallenger'
    """
    if hasattr(model, "learn_one"):
        return RiverChallenger(model, task)
    if hasattr(model, "labels") and hasattr(model, "predict_proba"):
        return OfflineChallenger(model, task, positive_class)
    if hasattr(model, "fit") and hasattr(model, "predict"):
        return SklearnChallenger(model, task)
    raise TypeError(f"{type(model).__name__} is neither a River model nor a scikit-learn estimator")


# --- storage of the comparison --------------------------------------------------------------------
def save_comparison(
    client: Any,
    prefix: str,
    name: str,
    result: Mapping[str, Any],
    *,
    champion_version: int | None = None,
    challenger_version: int | None = None,
) -> dict[str, Any]:
    """Store ``result`` as JSON under :func:`driftline.contract.keys.compare` (one SET) and return the stored document.

    The document is the result plus ``model``, ``champion_version``, ``challenger_version`` and
    ``updated_ms``.
    """
    document = {
        **result,
        "model": name,
        "champion_version": champion_version,
        "challenger_version": challenger_version,
        "updated_ms": int(time.time() * 1000),
    }
    client.set(keys.compare(prefix, name), json.dumps(document, sort_keys=True, allow_nan=False))
    return document


def load_comparison(client: Any, prefix: str, name: str) -> dict[str, Any] | None:
    """The document :func:`save_comparison` stored for ``name``, or None when there is none."""
    raw = client.get(keys.compare(prefix, name))
    return None if raw is None else json.loads(raw)
