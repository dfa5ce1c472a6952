"""The single-writer online learner: learns each delayed label exactly once, pure and crash-safe.

The learner has no I/O. The streaming agent feeds it joined labels in offset order, marks every consumed
offset with :meth:`OnlineLearner.mark_offset`, and stores :meth:`OnlineLearner.checkpoint` (model, offsets,
learned event ids and metrics in one signed blob) in ONE Redis write. After a crash it restores the blob and
seeks every partition to :meth:`OnlineLearner.next_offset`: labels before the checkpoint are in the model
and are not consumed again, labels after it were never applied, so every label is learned exactly once.

Duplicate labels (same ``event_id``) are learned once within the exactly-once window: a learned id is remembered
for ``window_ms`` of label *event time* (the labels' own ``ts``; the window ends ``window_ms`` before the median
time of the last 1,001 labels learned: one label dated far ahead does not move it), so a label re-sent within that
much event time is a duplicate at any speed or replay. Memory is bounded by ``max_learned_ids`` as well: past it
the oldest ids are forgotten before their window ends, and :attr:`OnlineLearner.forgotten_early` counts them (the
worker exports it as ``driftline_learned_ids_forgotten_early_total``): size ``max_learned_ids`` above labels/s x window.

:meth:`OnlineLearner.learn_many` learns a batch: a River linear pipeline takes it in one go
(:func:`driftline.models.minibatch.learn_rows`, the same SGD steps as ``learn_one``), any other model one
label at a time.

Prequential metrics compare the label with what was *served* at score time (``y_pred_at_score_time`` and
``proba_at_score_time`` from the predictions topic), cumulative and over a rolling window.

Examples
--------
>>> from driftline.models.features import FeatureSchema
>>> from driftline.models.specs import build_model
>>> learner = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary")
>>> learner.learn("e1", {"x": 1.0}, 1, True, {"True": 0.8, "False": 0.2})
True
>>> learner.learn("e1", {"x": 1.0}, 1, True, {"True": 0.8, "False": 0.2})
False
>>> learner.mark_offset("labels", 0, 41)
>>> restored = OnlineLearner.restore(learner.checkpoint(hmac_key=b"k"), hmac_key=b"k")
>>> restored.learned, restored.next_offset("labels", 0), restored.metrics()["accuracy"]
(1, 42, 1.0)
"""

from __future__ import annotations

import collections
import copy
import itertools
import math
import operator
import pickle
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from river import metrics as river_metrics
from river import stats as river_stats
from river import utils

from driftline.contract.signing import Keyring, as_keyring, seal, unseal
from driftline.models.feature_rows import features_taken
from driftline.models.learned_ids import LearnedIds, digest, digest_many
from driftline.models.minibatch import LISTS, MIN_ROWS, learn_rows, rows_kind

DEFAULT_MAX_LEARNED_IDS = 100_000
#: Label event time a learned id is remembered for by default (see the module docstring).
DEFAULT_WINDOW_MS = 3600 * 1000
#: Coerced label values remembered per learner (served predictions and labels repeat a few classes).
MAX_COERCED = 64
#: ``(event_id, x, y, served prediction, served probabilities, label ts)``, see :meth:`OnlineLearner.learn_many`.
LabelledRow = tuple[str, Mapping[str, Any], Any, Any, "Mapping[str, float] | None", "int | None"]
#: The keyword arguments of every pair a rolling metric is fed here (none): one dict for all, never changed.
_NO_KWARGS: dict[str, Any] = {}
#: The arguments of a rolling window's ``(args, kwargs)`` entry.
_ARGS = operator.itemgetter(0)
#: The fields of a :data:`LabelledRow` read as columns, by position (its features: :func:`features_taken`).
_ID, _Y, _PREDICTION, _PROBABILITIES, _TS = map(operator.itemgetter, (0, 2, 3, 4, 5))
_TRUE = {"true", "1", "yes", "1.0"}
_FALSE = {"false", "0", "no", "0.0"}


def coerce_label(task: str, y: Any, classes: Collection[Any] = ()) -> Any:
    """``y`` as the model expects it for ``task``, or ValueError with the reason.

    Binary labels become bools (ints 0/1 when the model's classes are ints, the matching string when they are
    strings); multiclass labels keep the type of the model's known classes (``3`` and ``"3"`` are one class);
    regression labels become finite floats.

    >>> coerce_label("binary", 1), coerce_label("binary", "false"), coerce_label("binary", True, {0, 1})
    (True, False, 1)
    >>> coerce_label("multiclass", 3, {"1", "2"}), coerce_label("multiclass", "2", {1, 2})
    ('3', 2)
    >>> coerce_label("regression", 2), coerce_label("regression", "2.5")
    (2.0, 2.5)
    >>> coerce_label("binary", 2)
    Traceback (most recent call last):
    ...
    ValueError: binary label must be true/false or 0/1, got 2
    """
    if task == "binary":
        return _binary(y, classes)
    if task == "multiclass":
        return _multiclass(y, classes)
    if task == "regression":
        return _regression(y)
    raise ValueError(f"unknown task {task!r}")


def _binary(y: Any, classes: Collection[Any]) -> Any:
    known = set(classes)
    if known and all(isinstance(c, str) for c in known):
        if str(y) in known or len(known) < 2:
            return str(y)
        raise ValueError(f"binary label {y!r} is not one of the model's classes {sorted(known)}")
    if isinstance(y, bool):
        value = y
    elif isinstance(y, int | float) and y in (0, 1):
        value = bool(y)
    elif isinstance(y, str) and y.strip().lower() in _TRUE | _FALSE:
        value = y.strip().lower() in _TRUE
    else:
        raise ValueError(f"binary label must be true/false or 0/1, got {y!r}")
    if known and all(isinstance(c, int) and not isinstance(c, bool) for c in known):
        return int(value)
    return value


def _multiclass(y: Any, classes: Collection[Any]) -> Any:
    if isinstance(y, bool):
        raise ValueError(f"multiclass label must be a string or an integer class, got bool {y!r}")
    if isinstance(y, float):
        if not math.isfinite(y) or not y.is_integer():
            raise ValueError(f"multiclass label must be a string or an integer class, got {y!r}")
        y = int(y)
    if not isinstance(y, int | str):
        raise ValueError(f"multiclass label must be a string or an integer class, got {type(y).__name__}")
    by_text = {str(c): c for c in classes}
    if str(y) in by_text:
        return by_text[str(y)]
    if by_text and all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        try:
            return int(y)
        except ValueError:
            raise ValueError(f"multiclass label {y!r} is not an integer like the model's classes") from None
    if by_text and all(isinstance(c, str) for c in classes):
        return str(y)
    return y


def _regression(y: Any) -> float:
    if isinstance(y, bool):
        raise ValueError(f"regression label must be a number, got bool {y!r}")
    try:
        value = float(y)
    except (TypeError, ValueError):
        raise ValueError(f"regression label must be a number, got {y!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"regression label must be finite, got {y!r}")
    return value


def _metric_set(task: str, window: int) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """The prequential metrics by name, and what each label updates: ``('label' | 'proba', updatable)``.

    Classification metrics read one confusion matrix (cumulative) and one rolling one, so a label updates two
    matrices, not one per metric.
    """
    if task == "regression":
        metrics: dict[str, Any] = {}
        for name, cls in {"mae": river_metrics.MAE, "rmse": river_metrics.RMSE}.items():
            metrics[name], metrics[f"{name}_rolling"] = cls(), utils.Rolling(cls, window_size=window)
        return metrics, [("label", metric) for metric in metrics.values()]
    if task == "binary":
        kinds: dict[str, Any] = {"accuracy": river_metrics.Accuracy, "f1": river_metrics.F1}
        loss: Any = river_metrics.LogLoss
    else:
        kinds, loss = (
            {"accuracy": river_metrics.Accuracy, "macro_f1": river_metrics.MacroF1},
            river_metrics.CrossEntropy,
        )
    matrix, rolling_matrix = river_metrics.ConfusionMatrix(), utils.Rolling(river_metrics.ConfusionMatrix, window)
    metrics = {}
    for name, cls in kinds.items():
        metrics[name], metrics[f"{name}_rolling"] = cls(cm=matrix), cls(cm=rolling_matrix.obj)
    metrics["logloss"], metrics["logloss_rolling"] = loss(), utils.Rolling(loss, window_size=window)
    feeds = [("label", matrix), ("label", rolling_matrix)]
    return metrics, feeds + [("proba", metrics["logloss"]), ("proba", metrics["logloss_rolling"])]


def feed_many(
    metric: Any,
    pairs: list[tuple[Any, Any]],
    values: list[float] | None = None,
    held: collections.deque[Any] | None = None,
    counts: Mapping[tuple[Any, Any], int] | None = None,
) -> None:
    """``metric.update(y, prediction)`` of each pair in order. A confusion matrix (or a rolling one) adds the
    count of each pair at once: its cells are sums of 1.0, the same numbers in any order. A mean (log loss, MAE,
    ...) takes ``values``, the pairs' own values when given (computed once for a metric and its rolling twin), in
    the order ``update`` and the rolling window's ``revert`` would take them. ``held``, for a rolling mean: the
    values of the pairs in its window, oldest first, kept beside it from one call to the next (a pair's value is
    computed once, when it enters; out of step with the window, e.g. after a restore, it is computed again from it).
    ``counts``, for a confusion matrix: ``Counter(pairs)``, when already counted (for a matrix and its rolling twin).
    ``held``, for a rolling confusion matrix: the counts of its window's pairs by the batches they came in, oldest
    first (``(pairs, counts)`` each), kept beside it likewise: the pairs that leave are counted once, when they came.

    >>> one, many = (utils.Rolling(river_metrics.ConfusionMatrix, window_size=3) for _ in range(2))
    >>> pairs = [(True, True), (True, False), (False, False), (True, True), (False, True)]
    >>> for y, p in pairs:
    ...     one.update(y, p)
    >>> feed_many(many, pairs)
    >>> many.obj.data == one.obj.data and many.obj.n_samples == one.obj.n_samples and many.window == one.window
    True
    """
    rolling = type(metric) is utils.Rolling
    matrix = metric.obj if rolling else metric
    if _plain_mean(matrix):
        _feed_mean(metric, matrix, pairs, values, held)
        return
    if type(matrix) is not river_metrics.ConfusionMatrix:
        for y, y_pred in pairs:
            metric.update(y, y_pred)
        return
    _count(matrix, pairs, 1.0, counts)
    if rolling:
        window = metric.window
        dropped = max(0, len(window) + len(pairs) - metric.window_size)
        leaving = min(dropped, len(window))
        if held is None:
            old = list(map(_ARGS, itertools.islice(window, leaving)))
            _count(matrix, old + pairs[: dropped - leaving], -1.0)
        else:
            _leave(matrix, window, held, leaving)
            if dropped > leaving:  # more pairs than the window holds: some of them leave at once
                _count(matrix, pairs[: dropped - leaving], -1.0)
        window.extend(zip(pairs, itertools.repeat(_NO_KWARGS)))
        if held is not None and dropped > leaving:  # the window holds the last of these pairs alone
            held.clear()
            held.append((len(window), tally(list(map(_ARGS, window)))))
        elif held is not None:
            held.append((len(pairs), tally(pairs) if counts is None else counts))


def _leave(matrix: Any, window: collections.deque[Any], held: collections.deque[Any], leaving: int) -> None:
    """``revert`` of the first ``leaving`` pairs of a rolling confusion ``matrix``'s ``window``, from the counts of
    the batches they came in (``held``, see :func:`feed_many`; counted again from the window when out of step with
    it); a batch that leaves in part keeps the counts of the rest."""
    if sum(n for n, _ in held) != len(window):  # out of step (a restore, a first call): one batch, the window
        held.clear()
        if window:
            held.append((len(window), tally(list(map(_ARGS, window)))))
    gone = 0
    while gone < leaving:
        n, counts = held[0]
        if gone + n <= leaving:
            held.popleft()
            _count(matrix, [], -1.0, counts)
            gone += n
            continue
        part = tally(list(map(_ARGS, itertools.islice(window, gone, leaving))))
        _count(matrix, [], -1.0, part)
        rest = {pair: count - part.get(pair, 0) for pair, count in counts.items()}
        held[0] = (n - (leaving - gone), {pair: count for pair, count in rest.items() if count})
        gone = leaving


def _is_matrix(feed: Any) -> bool:
    """A River confusion matrix, or a rolling one."""
    return type(feed.obj if type(feed) is utils.Rolling else feed) is river_metrics.ConfusionMatrix


def _plain_mean(metric: Any) -> bool:
    """A River mean metric whose update and revert are MeanMetric's own (the mean of ``_eval``)."""
    kind = type(metric)
    return (
        isinstance(metric, river_metrics.base.MeanMetric)
        and kind.update is river_metrics.base.MeanMetric.update
        and kind.revert is river_metrics.base.MeanMetric.revert
    )


def mean_values(
    metric: Any, pairs: list[tuple[Any, Any]], columns: tuple[Sequence[Any], Sequence[Any]] | None = None
) -> list[float]:
    """What a mean ``metric`` (or a rolling one) averages of each pair (River's log loss inlined: the same
    operations, the same floats). ``columns``: the pairs' two columns, when the caller has them.

    >>> pairs = [(True, {True: 0.8, False: 0.2}), (False, 0.3), (True, {})]
    >>> mean_values(river_metrics.LogLoss(), pairs) == [river_metrics.LogLoss()._eval(*p) for p in pairs]
    True
    """
    metric = metric.obj if type(metric) is utils.Rolling else metric
    if type(metric) is river_metrics.LogLoss and metric._eval.__func__ is _RIVER_LOG_LOSS:
        return _log_losses(pairs, columns)
    evaluate = metric._eval
    return [evaluate(y, y_pred) for y, y_pred in pairs]


_RIVER_LOG_LOSS = river_metrics.LogLoss._eval


def _columns(
    served: list[tuple[Any, Any, Any]], targets: list[Any]
) -> tuple[list[Any], list[Any], list[dict[Any, float] | None]]:
    """``(target, served prediction, served probabilities)`` rows as three columns (``targets`` when empty)."""
    if not served:
        return targets, [], []
    ys, predictions, probabilities = (list(column) for column in zip(*served, strict=True))
    return ys, predictions, probabilities


_TRUE_PROBABILITY = operator.methodcaller("get", True, 0.0)
#: Log losses of fewer pairs than this are computed one by one.
MIN_ARRAY_PAIRS = 32


def _log_losses(
    pairs: list[tuple[Any, Any]], columns: tuple[Sequence[Any], Sequence[Any]] | None = None
) -> list[float]:
    """``LogLoss._eval`` of each pair: the probability of True clamped to [1e-15, 1 - 1e-15], then -log (on
    arrays when every prediction is a dict of floats, or a float: the same floats, ``math.log`` of each).
    ``columns``: the pairs' labels and predictions, when the caller has them (no unzipping).

    >>> pairs = [(True, {True: 0.5}), (False, {True: 1.0}), (1, {False: 1.0}), ("", {True: 0.25})]
    >>> _log_losses(pairs) == [river_metrics.LogLoss()._eval(*pair) for pair in pairs]
    True
    """
    log, low, high = math.log, 1e-15, 1 - 1e-15
    if len(pairs) >= MIN_ARRAY_PAIRS:  # fewer: NumPy's fixed cost per call is more than it saves
        ys, predictions = zip(*pairs, strict=True) if columns is None else columns
        kinds = set(map(type, predictions))
        if kinds == {dict} or kinds == {float}:
            p = list(map(_TRUE_PROBABILITY, predictions)) if kinds == {dict} else predictions
            if kinds == {float} or set(map(type, p)) == {float}:
                clamped = np.clip(np.array(p, dtype=np.float64), low, high)
                truth = np.array(ys if set(map(type, ys)) == {bool} else list(map(bool, ys)), dtype=bool)
                chosen = np.where(truth, clamped, 1.0 - clamped)
                return list(map(operator.neg, map(log, chosen.tolist())))
    out = []
    for y, y_pred in pairs:
        p = y_pred.get(True, 0.0) if isinstance(y_pred, dict) else y_pred
        p = max(min(p, high), low)
        out.append(-log(p) if y else -log(1 - p))
    return out


def _feed_mean(
    metric: Any,
    mean_metric: Any,
    pairs: list[tuple[Any, Any]],
    values: list[float] | None,
    held: collections.deque[float] | None = None,
) -> None:
    values = mean_values(metric, pairs) if values is None else values
    stat = mean_metric._mean
    rolling = type(metric) is utils.Rolling
    if type(stat) is river_stats.Mean:
        _feed_stat(stat, metric, pairs, values, held) if rolling else _add_all(stat, values)
        return
    update, revert = stat.update, stat.revert
    if not rolling:
        for value in values:
            update(value)
        return
    window, size, evaluate = metric.window, metric.window_size, mean_metric._eval
    for pair, value in zip(pairs, values, strict=True):
        if len(window) == size:
            revert(evaluate(*window[0][0]))
        update(value)
        window.append((pair, {}))


def _add_all(stat: Any, values: list[float]) -> None:
    """``stats.Mean.update`` of each value, inlined (the same operations in the same order)."""
    n, mean = stat.n, stat._mean
    if len(values) < MIN_ARRAY_PAIRS:
        for value in values:
            n += 1.0
            mean += (1.0 / n) * (value - mean)
    else:  # each 1.0 / n at once: the same divisions of the same whole counts
        for share, value in zip((1.0 / (n + np.arange(1.0, len(values) + 1.0))).tolist(), values, strict=True):
            mean += share * (value - mean)
        n += len(values)
    stat.n, stat._mean = n, mean


def _feed_stat(
    stat: Any, metric: Any, pairs: list[tuple[Any, Any]], values: list[float], kept: collections.deque[float] | None
) -> None:
    """A rolling mean fed ``pairs`` as River's ``Rolling.update`` feeds it: before each pair once the window is
    full, ``revert`` of the value of the pair leaving it, then ``update``; ``stats.Mean``'s two steps inlined and
    the leaving pairs' values read from ``kept`` (see :func:`feed_many`) or computed in one call."""
    window, size = metric.window, metric.window_size
    held = len(window)
    dropped = max(0, held + len(pairs) - size)  # the first ``dropped`` of the window's pairs, then of ``pairs``
    if kept is not None and len(kept) != held:  # out of step with the window (a restore): from the window
        kept.clear()
        kept.extend(mean_values(metric, [args for args, _ in window]))
    if kept is not None:
        leaving = list(itertools.islice(kept, min(dropped, held)))
    else:
        leaving = mean_values(metric, [args for args, _ in itertools.islice(window, min(dropped, held))])
    old = leaving + values[: max(0, dropped - held)]
    n, mean = stat.n, stat._mean
    filling = max(0, min(len(values), size - held))  # the values that enter before the window is full
    for value in values[:filling]:
        n += 1.0
        mean += (1.0 / n) * (value - mean)
    if filling < len(values) and n >= 2.0:  # full: each value enters as the oldest leaves, ``n`` back where it was
        down, up = 1.0 / (n - 1.0), 1.0 / n
        for leaving_value, value in zip(old, values[filling:], strict=True):
            mean -= down * (leaving_value - mean)
            mean += up * (value - mean)
    else:  # a window of one (or a count out of step with it): River's steps as they are
        for i, value in enumerate(values[filling:], filling):
            n -= 1.0
            if n < 0:
                raise ValueError("Cannot go below 0")
            mean = 0.0 if n == 0 else mean - (1.0 / n) * (old[held + i - size] - mean)
            n += 1.0
            mean += (1.0 / n) * (value - mean)
    stat.n, stat._mean = n, mean
    window.extend(zip(pairs, itertools.repeat(_NO_KWARGS)))
    if kept is not None:
        kept.extend(values)
        for _ in range(len(kept) - len(window)):
            kept.popleft()


def tally(
    pairs: Sequence[tuple[Any, Any]], columns: tuple[Sequence[Any], Sequence[Any]] | None = None
) -> Mapping[tuple[Any, Any], int]:
    """``Counter(pairs)``: how many times each distinct pair comes. Pairs of two bools (a binary task's labels and
    served predictions) are counted from four counts, no tuple hashed a pair (in process on 500 pairs: 20 against
    117 ns a pair): the same counts, a pair that never comes left out (a confusion matrix's cells are sums of
    whole counts: the same in any order).

    >>> pairs = [(True, False), (False, False), (True, False)] * 20
    >>> tally(pairs) == collections.Counter(pairs)
    True
    >>> tally([(1, True), (True, 1)] * 20) == collections.Counter({(1, True): 40})  # ints equal to bools: as Counter
    True
    """
    if len(pairs) < MIN_ARRAY_PAIRS:
        return collections.Counter(pairs)
    ys, predictions = zip(*pairs, strict=True) if columns is None else columns
    if set(map(type, ys)) != {bool} or set(map(type, predictions)) != {bool}:
        return collections.Counter(pairs)
    both, true, predicted = sum(map(operator.and_, ys, predictions)), ys.count(True), predictions.count(True)
    counts = {
        (True, True): both,
        (True, False): true - both,
        (False, True): predicted - both,
        (False, False): len(ys) - true - predicted + both,
    }
    return {pair: count for pair, count in counts.items() if count}


def _count(
    matrix: Any, pairs: list[tuple[Any, Any]], sign: float, counts: Mapping[tuple[Any, Any], int] | None = None
) -> None:
    """``ConfusionMatrix.update`` (``sign`` 1.0) or ``revert`` (-1.0) of each pair, a count per distinct pair
    (``counts``: the pairs already counted)."""
    for (y, y_pred), count in (tally(pairs) if counts is None else counts).items():
        weight = sign * count
        matrix.n_samples += int(weight)
        matrix.data[y][y_pred] += weight
        matrix.total_weight += weight
        matrix.sum_row[y] += weight
        matrix.sum_col[y_pred] += weight
        if y == y_pred:
            matrix._total_true_positives += weight


class OnlineLearner:
    """Learns delayed labels exactly once and keeps prequential metrics; checkpoints atomically.

    Parameters
    ----------
    model
        A River model (or pipeline) for ``task``, updated in place; a model without ``learn_one`` is left as it
        is (see :attr:`updates_model`).
    task
        ``'binary'``, ``'multiclass'`` or ``'regression'``.
    metric_window
        Size of the rolling window of every ``*_rolling`` metric.
    max_learned_ids
        At most this many learned event ids are remembered; past it the oldest are forgotten (early).
    window_ms
        Label event time a learned id is remembered for (the exactly-once window).
    classes
        Classes the model already knows (e.g. from the offline training data); labels are coerced to them.
    """

    def __init__(
        self,
        model: Any,
        task: str,
        metric_window: int = 1000,
        *,
        max_learned_ids: int = DEFAULT_MAX_LEARNED_IDS,
        window_ms: int = DEFAULT_WINDOW_MS,
        classes: Collection[Any] = (),
    ):
        if task not in ("binary", "multiclass", "regression"):
            raise ValueError(f"unknown task {task!r}")
        if metric_window < 1:
            raise ValueError("metric_window must be >= 1")
        self.model = model
        self.task = task
        self.metric_window = metric_window
        self.classes: set[Any] = set(classes) if task != "regression" else set()
        self.learned = 0
        self._offsets: dict[tuple[str, int], int] = {}
        #: Learned event ids, oldest first, with their label's event time.
        self._ids = LearnedIds(max_learned_ids, window_ms)
        self._metrics, self._feeds = _metric_set(task, metric_window)
        #: (type, value) -> value coerced to the known classes (cleared when a class is added)
        self._coerced: dict[tuple[type, Any], Any] = {}
        self._counts = {"label": 0, "proba": 0}

    # --- learning -----------------------------------------------------------------------------
    @property
    def updates_model(self) -> bool:
        """False for a model that cannot learn online (an offline scikit-learn model promoted from challenger):
        its labels are still joined exactly once and scored into the prequential metrics."""
        return hasattr(self.model, "learn_one")

    def has_learned(self, event_id: str) -> bool:
        """The label of ``event_id`` was learned (and is still remembered: see ``max_learned_ids``)."""
        return digest(event_id) in self._ids

    def coerce(self, y: Any) -> Any:
        """``y`` coerced to this learner's task and known classes (ValueError with the reason otherwise)."""
        if self.task == "regression":
            return coerce_label(self.task, y)
        key = (type(y), y)
        try:
            return self._coerced[key]
        except KeyError:
            pass
        except TypeError:  # unhashable: not a class
            return coerce_label(self.task, y, self.classes)
        value = coerce_label(self.task, y, self.classes)
        if len(self._coerced) >= MAX_COERCED:
            self._coerced.clear()
        self._coerced[key] = value
        return value

    def _coerce_all(self, ys: list[Any]) -> list[Any]:
        """:meth:`coerce` of each label, or the ValueError it raised; once per distinct label when they are all
        bools, ints or strings of one type (the classes do not move meanwhile: the same values).

        >>> from driftline.models.features import FeatureSchema
        >>> from driftline.models.specs import build_model
        >>> learner = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary")
        >>> learner._coerce_all([1, 0, 7])
        [True, False, ValueError('binary label must be true/false or 0/1, got 7')]
        """
        kinds = set(map(type, ys))
        if len(kinds) == 1 and kinds <= {bool, int, str}:
            by_value = {y: self._coerce_or_error(y) for y in set(ys)}
            return list(map(by_value.__getitem__, ys))
        return [self._coerce_or_error(y) for y in ys]

    def _coerce_or_error(self, y: Any) -> Any:
        try:
            return self.coerce(y)
        except ValueError as exc:
            return exc

    def limit_ids(self, max_learned_ids: int, window_ms: int) -> None:
        """Set the exactly-once window and the cap on remembered ids (a restored learner takes the settings')."""
        if (max_learned_ids, window_ms) != (self._ids.capacity, self._ids.window_ms):
            self._ids.resize(max_learned_ids, window_ms)

    @property
    def forgotten_early(self) -> int:
        """Learned ids forgotten before their exactly-once window ended (``max_learned_ids`` reached)."""
        return self._ids.forgotten_early

    def learn(
        self,
        event_id: str,
        x: Mapping[str, Any],
        y: Any,
        y_pred_at_score_time: Any = None,
        proba_at_score_time: Mapping[str, float] | None = None,
        ts: int | None = None,
    ) -> bool:
        """Learn one joined label; False (nothing changes) when ``event_id`` was already learned.

        Parameters
        ----------
        event_id
            The event the label belongs to.
        x
            The event's prepared features (not mutated).
        y
            The label; coerced with :meth:`coerce` (a label that does not fit raises ValueError).
        y_pred_at_score_time, proba_at_score_time
            What was served for the event (``prediction`` and ``probabilities`` or ``score`` of the
            predictions topic); they feed the prequential metrics. None skips the metric they feed.
        ts
            The label's event time (ms), which moves the exactly-once window; None leaves the window where it is.
        """
        (outcome,) = self.learn_many([(event_id, x, y, y_pred_at_score_time, proba_at_score_time, ts)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def learn_many(self, rows: Sequence[LabelledRow]) -> list[bool | Exception]:
        """Learn ``(event_id, x, y, served prediction, served probabilities, ts)`` rows in order, as :meth:`learn`
        would one by one; per row True (learned), False (a duplicate) or the exception that kept it out (a
        ValueError: the label does not fit). A failing row changes nothing, the others are learned.

        >>> from driftline.models.features import FeatureSchema
        >>> from driftline.models.specs import build_model
        >>> learner = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary")
        >>> learner.learn_many([("a", {"x": 1.0}, 1, None, None, 5), ("a", {"x": 1.0}, 1, None, None, 5),
        ...                     ("b", {"x": 2.0}, 7, None, None, 6)])
        [True, False, ValueError('binary label must be true/false or 0/1, got 7')]
        """
        outcomes: list[bool | Exception] = [False] * len(rows)
        taken: list[int] = []
        targets: list[Any] = []
        batch: set[int] = set()
        repeats: list[int] = []  # repeats of an id taken earlier in this batch: duplicates unless that one fails
        keys = digest_many(list(map(_ID, rows)))
        coerced = self._coerce_all(list(map(_Y, rows)))
        fits = not any(issubclass(kind, ValueError) for kind in set(map(type, coerced)))
        if fits and self._ids.isdisjoint(keys) and len(set(keys)) == len(keys):
            taken, targets = list(range(len(rows))), coerced  # the usual batch: new ids, labels that fit
        else:
            known = self._ids.contains_many(keys)
            for i, (key, target) in enumerate(zip(keys, coerced, strict=True)):
                if known[i]:
                    continue
                if key in batch:
                    repeats.append(i)
                    continue
                if isinstance(target, ValueError):
                    outcomes[i] = target
                    continue
                targets.append(target)
                batch.add(key)
                taken.append(i)
        failed: dict[int, Exception] = {}
        if self.updates_model:
            failed = self._learn_model(features_taken(rows, taken), targets)  # a LabelledBatch: its matrix
            for position, exc in failed.items():
                outcomes[taken[position]] = exc
        if len(taken) == len(rows) and not failed:  # every row learned
            kept = list(enumerate(taken))
            kept_rows, kept_keys, kept_targets = rows, keys, targets
        else:
            kept = [(position, i) for position, i in enumerate(taken) if not isinstance(outcomes[i], Exception)]
            kept_rows, kept_keys = [rows[i] for _, i in kept], [keys[i] for _, i in kept]
            kept_targets = [targets[p] for p, _ in kept]
        times = list(map(_TS, kept_rows))
        self._ids.advance(times)
        served = self._served_columns(kept_targets, kept_rows)
        if served is None:
            known_rows = self._served_known(kept_targets, kept_rows)
            served = None if known_rows is None else _columns(known_rows, kept_targets)
        if served is not None:  # no new class: the served values coerced once per distinct value
            self._ids.add_many(kept_keys, times)
            self.learned += len(kept)
            if len(kept) == len(rows):
                outcomes = [True] * len(rows)
            else:
                for _, i in kept:
                    outcomes[i] = True
        else:
            one_by_one = []
            for position, i in kept:
                _, _, _, y_pred, proba, ts = rows[i]
                target = targets[position]
                if self.task != "regression" and target not in self.classes:
                    self.classes.add(target)
                    self._coerced.clear()
                one_by_one.append((target, *self._served(y_pred, proba)))
                self._ids.add(keys[i], ts)
                self.learned += 1
                outcomes[i] = True
            served = _columns(one_by_one, kept_targets)
        self._update_metrics(*served)
        again = [i for i in repeats if keys[i] not in self._ids]  # the first one failed: the next is no duplicate
        for i, outcome in zip(again, self.learn_many([rows[i] for i in again]) if again else [], strict=True):
            outcomes[i] = outcome
        return outcomes

    def _learn_model(self, xs: Sequence[Mapping[str, Any]], ys: list[Any]) -> dict[int, Exception]:
        """Learn the rows (a batch at a time where :mod:`~driftline.models.minibatch` can); the exceptions of the
        rows that could not be learned, by position (a failed batch is undone and learned one row at a time)."""
        kind = rows_kind(self.model) if len(xs) >= MIN_ROWS else None
        if kind is not None:
            # on plain lists a batch that raises wrote nothing: no copy of the model to undo it with
            before = None if kind == LISTS else copy.deepcopy(self.model)
            try:
                if learn_rows(self.model, xs, ys, kind):
                    return {}
            except Exception:  # noqa: BLE001 - undone, then row by row: only the rows that fail are kept out
                if before is not None:
                    self.model = before
        failed: dict[int, Exception] = {}
        for position, (x, y) in enumerate(zip(xs, ys, strict=True)):
            try:
                self.model.learn_one(dict(x), y)
            except Exception as exc:  # noqa: BLE001 - the caller dead-letters this row alone
                failed[position] = exc
        return failed

    def _served_columns(
        self, targets: list[Any], rows: Sequence[LabelledRow]
    ) -> tuple[list[Any], list[Any], list[Any]] | None:
        """What :meth:`_served_known` gives, as columns (targets, served predictions, served probabilities), for
        the usual batch of a classifier: every target a known class, the served predictions of one type (bool, int
        or str), the probabilities dicts with the same two keys in the same order, each a class, and float values
        (for River's binary log loss, :meth:`_true_probabilities`, the probability of True of each instead).
        None for any other batch (the caller goes by :meth:`_served_known`).

        >>> from driftline.models.features import FeatureSchema
        >>> from driftline.models.specs import build_model
        >>> model = build_model(FeatureSchema({"x": "numeric"}), "binary")
        >>> learner = OnlineLearner(model, "binary", classes={True, False})
        >>> rows = [("a", {}, 1, True, {"False": 0.25, "True": 0.75}, 1)]
        >>> rows.append(("b", {}, 0, False, {"False": 1, "True": 0}, 2))
        >>> targets, predictions, probabilities = learner._served_columns([True, False] * 16, rows * 16)
        >>> targets[:2], predictions[:2], probabilities[:2]  # a binary log loss reads the probability of True alone
        ([True, False], [True, False], [0.75, 0.0])
        >>> learner._served_columns([True] * 32, rows[:1] * 31 + [("b", {}, 0, "no", None, 2)]) is None
        True
        """
        if self.task == "regression" or len(rows) < MIN_ARRAY_PAIRS or not set(targets) <= self.classes:
            return None  # (a batch this small goes row by row at no more cost)
        predictions, probabilities = list(map(_PREDICTION, rows)), list(map(_PROBABILITIES, rows))
        kinds = set(map(type, predictions))
        first = probabilities[0]
        if len(kinds) != 1 or not kinds <= {bool, int, str} or type(first) is not dict or len(first) != 2:
            return None
        names = tuple(first)
        if set(map(type, probabilities)) != {dict} or set(map(len, probabilities)) != {2}:
            return None
        try:
            coerced = tuple(self.coerce(name) for name in names)
            columns = [list(map(float, map(operator.itemgetter(name), probabilities))) for name in names]
        except (ValueError, KeyError):  # a key that is no class (or not the first's), a value that is no number
            return None
        (a, b), (first_values, second_values) = coerced, columns
        true_only = self._true_probabilities()  # the probability of True alone: with two classes, in any key order
        if (a == b or not true_only) and set(map(tuple, probabilities)) != {names}:
            return None
        served = {value: self._served(value, None)[0] for value in set(predictions)}
        if not all(map(operator.is_, served, served.values())):  # (bools stay the same objects)
            predictions = list(map(served.__getitem__, predictions))
        if true_only:  # the probability of True of each: what the dicts' get(True, 0.0) gives
            at = {a: 0, b: 1}.get(True)  # a key twice: the last one's, as in the dicts
            return targets, predictions, [0.0] * len(rows) if at is None else columns[at]
        mapped = [{a: x, b: y} for x, y in zip(first_values, second_values, strict=True)]
        return targets, predictions, mapped

    def _true_probabilities(self) -> bool:
        """Whether the served probabilities feed River's binary log loss alone (cumulative and rolling), which reads
        the probability of True of each: they are kept as that float (a smaller window, no dict per label)."""
        proba = [feed.obj if type(feed) is utils.Rolling else feed for kind, feed in self._feeds if kind == "proba"]
        return self.task == "binary" and all(
            type(metric) is river_metrics.LogLoss and metric._eval.__func__ is _RIVER_LOG_LOSS for metric in proba
        )

    def _served_known(
        self, targets: list[Any], rows: list[LabelledRow]
    ) -> list[tuple[Any, Any, dict[Any, float] | None]] | None:
        """``(target, *_served(prediction, probabilities))`` of each row when every target is a known class (so
        the classes, hence each coercion, stay as they are through the rows): each distinct served prediction and
        set of probability keys coerced once. None when a target is a new class (the caller goes row by row).

        >>> from driftline.models.features import FeatureSchema
        >>> from driftline.models.specs import build_model
        >>> model = build_model(FeatureSchema({"x": "numeric"}), "binary")
        >>> learner = OnlineLearner(model, "binary", classes={True, False})
        >>> rows = [("a", {}, 1, True, {"False": 0.25, "True": 0.75}, 1), ("b", {}, 0, "no", {"x": 1.0}, 2)]
        >>> learner._served_known([True, False], rows)
        [(True, True, {False: 0.25, True: 0.75}), (False, False, None)]
        >>> learner._served_known([True, 7], rows) is None
        True
        """
        if self.task != "regression" and not all(target in self.classes for target in targets):
            return None
        predictions: dict[tuple[type, Any], Any] = {}
        labels: dict[tuple[Any, ...], tuple[Any, ...] | None] = {}
        out: list[tuple[Any, Any, dict[Any, float] | None]] = []
        regression = self.task == "regression"
        for target, (_, _, _, y_pred, proba, _) in zip(targets, rows, strict=True):
            if y_pred is not None and regression:
                y_pred = self._served(y_pred, None)[0]
            elif y_pred is not None:
                try:
                    y_pred = predictions[type(y_pred), y_pred]
                except KeyError:
                    y_pred = predictions.setdefault((type(y_pred), y_pred), self._served(y_pred, None)[0])
                except TypeError:  # unhashable
                    y_pred = self._served(y_pred, None)[0]
            if regression or not proba:
                out.append((target, y_pred, None))
                continue
            names = tuple(proba)
            if names not in labels:
                try:
                    labels[names] = tuple(self.coerce(k) for k in names)
                except ValueError:
                    labels[names] = None
            coerced = labels[names]
            if coerced is None:  # a key that is no class: as _served says (it may raise on a value first)
                out.append((target, y_pred, self._served(None, proba)[1]))
                continue
            try:
                if len(coerced) == 2:  # a binary pair: the same dict as zip's (a key twice: the last value)
                    first, second = proba.values()
                    mapped = {coerced[0]: float(first), coerced[1]: float(second)}
                else:
                    mapped = dict(zip(coerced, map(float, proba.values()), strict=True))
            except ValueError:
                mapped = None
            out.append((target, y_pred, mapped))
        return out

    def _served(self, y_pred: Any, proba: Mapping[str, float] | None) -> tuple[Any, Any]:
        """The served prediction and probabilities in the label's class space (None where unusable)."""
        if y_pred is not None:
            try:
                y_pred = self.coerce(y_pred)
            except ValueError:
                y_pred = None
        if self.task == "regression" or not proba:
            return y_pred, None
        try:
            mapped = {self.coerce(k): float(p) for k, p in proba.items()}
        except ValueError:
            return y_pred, None
        return y_pred, mapped

    def _update_metrics(
        self, targets: list[Any], predictions: list[Any], probabilities: list[dict[Any, float] | float | None]
    ) -> None:
        """Feed each label with its served prediction and served probabilities to the metrics, in order (a None
        skips the metrics it feeds). For River's binary log loss, a probabilities dict is taken as its probability
        of True (:meth:`_true_probabilities`): the same log loss, the same float in the rolling window's pair."""
        if not set(map(type, probabilities)) <= {float, type(None)} and self._true_probabilities():
            probabilities = [_TRUE_PROBABILITY(p) if type(p) is dict else p for p in probabilities]
        columns: dict[str, tuple[list[Any], list[Any]] | None] = {"label": None, "proba": None}  # no None in them
        if None in predictions:
            labelled = [(y, y_pred) for y, y_pred in zip(targets, predictions, strict=True) if y_pred is not None]
        else:
            labelled, columns["label"] = list(zip(targets, predictions, strict=True)), (targets, predictions)
        if None in probabilities:
            scored = [(y, proba) for y, proba in zip(targets, probabilities, strict=True) if proba is not None]
        else:
            scored, columns["proba"] = list(zip(targets, probabilities, strict=True)), (targets, probabilities)
        values: dict[tuple[str, type], list[float]] = {}  # a mean and its rolling twin average the same values
        held = self.__dict__.setdefault("_held", {})  # per rolling metric, its window's values (not checkpointed)
        counted: dict[str, Mapping[tuple[Any, Any], int]] = {}  # a matrix and its rolling twin: one count
        for position, (kind, feed) in enumerate(self._feeds):
            pairs = scored if kind == "proba" else labelled
            metric = feed.obj if type(feed) is utils.Rolling else feed
            if _plain_mean(metric) and pairs:
                if (kind, type(metric)) not in values:
                    values[kind, type(metric)] = mean_values(feed, pairs, columns[kind])
                rolling = type(feed) is utils.Rolling  # its kept values as many as its window holds, at most
                kept = held.setdefault(position, collections.deque(maxlen=feed.window_size)) if rolling else None
                feed_many(feed, pairs, values[kind, type(metric)], kept)
            elif _is_matrix(feed):
                if kind not in counted:
                    counted[kind] = tally(pairs, columns[kind])
                chunks = held.setdefault(position, collections.deque()) if type(feed) is utils.Rolling else None
                feed_many(feed, pairs, held=chunks, counts=counted[kind])
            else:
                feed_many(feed, pairs)
        self._counts["label"] += len(labelled)
        self._counts["proba"] += len(scored)

    # --- offsets ------------------------------------------------------------------------------
    def mark_offset(self, topic: str, partition: int, offset: int) -> None:
        """Record that the message at ``offset`` of ``topic``/``partition`` has been applied (monotone)."""
        key = (topic, int(partition))
        if offset > self._offsets.get(key, -1):
            self._offsets[key] = int(offset)

    def forget_offset(self, topic: str, partition: int) -> None:
        """Forget where ``topic``/``partition`` was: its log was replaced (a new broker, offsets from 0 again), so
        every offset of it is new; learned ids still make a label already learned a duplicate.

        >>> from driftline.models.features import FeatureSchema
        >>> from driftline.models.specs import build_model
        >>> learner = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary")
        >>> learner.mark_offset("labels", 0, 41)
        >>> learner.forget_offset("labels", 0)
        >>> learner.next_offset("labels", 0) is None
        True
        """
        self._offsets.pop((topic, int(partition)), None)

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The offset to resume ``topic``/``partition`` from, or None when nothing was applied there."""
        last = self._offsets.get((topic, int(partition)))
        return None if last is None else last + 1

    @property
    def offsets(self) -> dict[tuple[str, int], int]:
        """Last applied offset per (topic, partition)."""
        return dict(self._offsets)

    @property
    def remembered_ids(self) -> int:
        """How many learned event ids are held for de-duplication."""
        return len(self._ids)

    # --- metrics ------------------------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        """Cumulative and ``*_rolling`` prequential metrics; a metric appears once it has a value."""
        out: dict[str, float] = {}
        for name, metric in self._metrics.items():
            fed = self._counts["proba" if name.startswith("logloss") else "label"]
            if fed:
                out[name] = float(metric.get())
        return out

    # --- checkpoint ---------------------------------------------------------------------------
    def checkpoint(self, *, hmac_key: Keyring | bytes, purpose: str = "learner") -> bytes:
        """Everything needed to resume (model, offsets, learned ids, metrics) as one signed blob.

        A model that does not learn online is left out (``model`` is None once restored): it never changes, so
        it is the registry version the learner started from, and it can be large (a scikit-learn ensemble).
        """
        state = {name: value for name, value in self.__dict__.items() if name != "_held"}  # computed again
        state["_coerced"] = {}
        if not self.updates_model:
            state["model"] = None
        payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        return seal(as_keyring(hmac_key), payload, purpose)

    @classmethod
    def restore(cls, blob: bytes, *, hmac_key: Keyring | bytes, purpose: str = "learner") -> OnlineLearner:
        """The learner saved by :meth:`checkpoint` for ``purpose``; its signature is verified before anything
        is unpickled (:class:`~driftline.contract.signing.IntegrityError` otherwise)."""
        payload = unseal(as_keyring(hmac_key), blob, purpose)
        learner = cls.__new__(cls)
        # checkpoints from before the exactly-once window: ids without a time, counted from 0
        learner.__dict__.update(pickle.loads(payload))  # noqa: S301 - verified with the HMAC just above
        if isinstance(learner._ids, OrderedDict):  # checkpoints from before the exactly-once window
            ids = LearnedIds(learner.__dict__.pop("max_learned_ids"), DEFAULT_WINDOW_MS)
            for event_id, ts in learner._ids.items():
                ids.add(digest(event_id), ts)
            learner._ids = ids
            for stale in ("window_ms", "latest_ts", "forgotten_early"):
                learner.__dict__.pop(stale, None)
        if "_feeds" not in learner.__dict__:  # checkpoints from before the shared confusion matrices
            learner._feeds = [("proba" if n.startswith("logloss") else "label", m) for n, m in learner._metrics.items()]
        learner._coerced = {}
        return learner
