"""Learn a batch of rows at once, equal to learning them one at a time.

River's ``learn_many`` on a linear model takes ONE step along the batch's mean gradient: on a batch of 500 labels
the model moves as if it had seen one, so a live learner using it would learn ~500x slower than ``learn_one``
(River says so: its ``check_learn_many_matches_learn_one`` is skipped for linear models). :func:`learn_rows`
keeps ``learn_one``'s result to the last bits of a sum and takes the speed:

* a standard scaler updates its running mean and variance row after row with ``learn_one``'s own recurrence, a
  column at a time, and scales each row with the statistics up to it, as ``learn_one`` does;
* selections and one-hot encoders (whose output does not depend on the rows before) learn and transform the
  batch with River's ``learn_many`` / ``transform_many``;
* the linear head (``LogisticRegression`` / ``LinearRegression``, plain SGD, no L1/L2) takes one SGD step per row,
  in order, with River's own loss gradient (:func:`sgd_steps`), on lists of floats instead of one dict per row;
* a pipeline of selections and scalers only (the Agrawal model's shape) does all of it on one float matrix when
  every value is a finite number (:func:`_learn_matrix`): the scalers' running statistics of every row from
  shifted prefix sums, the SGD steps a block of :data:`SGD_BLOCK` rows at a time from the block's Gram matrix, only
  the loss gradients row by row; equal to ``learn_one`` to float rounding (a property test against River), not bit
  for bit (in process on 500 Agrawal rows: 4.4-4.9 against 6.4-9.7 us a row); else on plain lists of column
  values, no DataFrame (7 against 17 us a row);
* any other model (a tree, a multiclass one-vs-rest, an optimizer with state), a small batch, or rows whose
  features differ in presence learn one row at a time with ``learn_one`` (:func:`learn_rows` returns False).

>>> from driftline.models.features import FeatureSchema
>>> from driftline.models.specs import build_model
>>> one, many = (build_model(FeatureSchema({"x": "numeric"}), "binary") for _ in range(2))
>>> rows = [({"x": float(i % 7)}, i % 7 > 3) for i in range(300)]
>>> for x, y in rows:
...     one.learn_one(x, y)
>>> supports_rows(many), learn_rows(many, [x for x, _ in rows[:150]], [y for _, y in rows[:150]])
(True, True)
>>> learn_rows(many, [x for x, _ in rows[150:]], [y for _, y in rows[150:]])
True
>>> abs(one.predict_proba_one({"x": 5.0})[True] - many.predict_proba_one({"x": 5.0})[True]) < 0.01
True
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from river import compose, linear_model, optim, preprocessing

from driftline.models.feature_rows import matrix_of

#: Rows below this many learn one at a time (a DataFrame costs more than it saves).
MIN_ROWS = 64


def _head(model: Any) -> Any | None:
    """The linear head of a River pipeline that :func:`sgd_steps` reproduces exactly, else None."""
    if not isinstance(model, compose.Pipeline):
        return None
    head = list(model.steps.values())[-1]
    if type(head) not in (linear_model.LogisticRegression, linear_model.LinearRegression):
        return None
    plain = (
        type(head.optimizer) is optim.SGD
        and isinstance(head.optimizer.lr, optim.schedulers.Constant)
        and isinstance(head.intercept_lr, optim.schedulers.Constant)
        and isinstance(head.initializer, optim.initializers.Zeros)
        and head.l1 == 0
        and head.l2 == 0
    )
    return head if plain else None


def _transformers(model: Any) -> list[Any]:
    return list(model.steps.values())[:-1]


def _exact(step: Any) -> bool:
    """Whether :func:`_through` reproduces ``step``'s ``learn_one`` + ``transform_one`` row by row."""
    if isinstance(step, compose.TransformerUnion):
        return all(_exact(part) for part in step.transformers.values())
    if isinstance(step, compose.Pipeline):
        return all(_exact(part) for part in step.steps.values())
    if type(step) is preprocessing.StandardScaler:
        return step.window_size is None
    return isinstance(step, compose.Select) or type(step) is preprocessing.OneHotEncoder


def supports_rows(model: Any) -> bool:
    """Whether :func:`learn_rows` learns ``model`` a batch at a time (else one row at a time).

    >>> from river import tree
    >>> supports_rows(tree.HoeffdingTreeClassifier())
    False
    """
    return rows_kind(model) is not None


def on_plain_lists(model: Any) -> bool:
    """Whether :func:`learn_rows` learns ``model`` on plain lists (selections and standard scalers ahead of the
    linear head, the Agrawal model's shape): then a batch that raises leaves the model unchanged, nothing to undo.

    >>> from driftline.models.features import FeatureSchema
    >>> from driftline.models.specs import build_model
    >>> on_plain_lists(build_model(FeatureSchema({"x": "numeric"}), "binary"))
    True
    >>> on_plain_lists(build_model(FeatureSchema({"c": "categorical"}), "binary"))  # one-hot: a DataFrame
    False
    """
    return rows_kind(model) == LISTS


#: :func:`rows_kind` of a model :func:`on_plain_lists`, and of any other model :func:`supports_rows`.
LISTS, FRAME = "lists", "frame"


def rows_kind(model: Any) -> str | None:
    """How :func:`learn_rows` learns ``model``: :data:`LISTS` (:func:`on_plain_lists`), :data:`FRAME` (a DataFrame)
    or None (one row at a time). One look at the pipeline's steps (River's ``isinstance`` is slow), for a caller
    that asks both questions of one batch.

    >>> from driftline.models.features import FeatureSchema
    >>> from driftline.models.specs import build_model
    >>> rows_kind(build_model(FeatureSchema({"x": "numeric"}), "binary")), rows_kind(object())
    ('lists', None)
    """
    if _head(model) is None:
        return None
    steps = _transformers(model)
    if not all(_exact(step) for step in steps):
        return None
    plain = all(isinstance(step, compose.Select) or type(step) is preprocessing.StandardScaler for step in steps)
    return LISTS if plain else FRAME


def learn_rows(model: Any, xs: Sequence[dict[str, Any]], ys: Sequence[Any], kind: str | None = None) -> bool:
    """Learn ``xs``/``ys`` in order as one batch; False (nothing learned: learn them with ``learn_one``) unless
    :func:`supports_rows`, at least :data:`MIN_ROWS` rows and the same features present in every row (an absent
    feature is skipped by ``learn_one``, it would be a NaN in a frame). ``kind``: :func:`rows_kind` of ``model``
    when the caller knows it.

    When :func:`on_plain_lists`, everything is computed before anything is written: a row that raises (text where
    a number belongs, a label the loss cannot take) leaves the model as it was.
    """
    first = xs[0].keys() if xs else None
    if len(xs) < MIN_ROWS:
        return False
    kind = rows_kind(model) if kind is None else kind
    if kind is None:
        return False
    if matrix_of(xs) is None and any(x.keys() != first for x in xs):  # FeatureRows: every row has the same keys
        return False
    steps = _transformers(model)
    if kind == LISTS and _learn_matrix(model, steps, xs, ys):
        return True
    columns = _columns(xs, list(first))  # type: ignore[arg-type]
    if kind == LISTS:
        updates: list[tuple[Any, Any, tuple[int, float, float]]] = []
        for step in steps:  # selections and scalers on plain lists: no DataFrame, nothing written yet
            if isinstance(step, compose.Select):
                columns = _select(step, columns)
                continue
            floats = {column: list(map(float, values)) for column, values in columns.items()}
            columns = {}
            for column, values in floats.items():
                columns[column], statistics = _scaled(step, column, values)
                updates.append((step, column, statistics))
        rows = [list(map(float, row)) for row in zip(*columns.values(), strict=True)] if columns else [[]] * len(xs)
        head = _head(model)
        intercept, weights = _sgd(head, list(columns), rows, ys)
        for scaler, column, statistics in updates:  # every row went through: write it all
            _set_statistics(scaler, column, statistics)
        _set_head(head, list(columns), intercept, weights, len(rows))
        return True
    frame = pd.DataFrame(columns)
    for step in steps:
        frame = _through(step, frame)
    sgd_steps(_head(model), frame, ys)
    return True


#: Rows of a block of SGD steps taken from one Gram matrix (:func:`_sgd_matrix`): a row's Python sum reads the
#: gradients of the rows before it in its block, so smaller blocks cost fewer products a row and more NumPy calls a
#: block (in process on 500 Agrawal rows, the log-loss loop: 0.85 us a row at 12, 0.88 at 16, 0.94 at 20).
SGD_BLOCK = 12


def _learn_matrix(model: Any, steps: list[Any], xs: Sequence[dict[str, Any]], ys: Sequence[Any]) -> bool:
    """:func:`learn_rows` of a pipeline :func:`on_plain_lists` on one float matrix: the scalers' statistics of
    every row at once (:func:`_scaled_matrix`), the SGD steps a block of rows at a time (:func:`_sgd_matrix`);
    the same numbers as the plain lists to float rounding. False (nothing written) unless every value is a finite
    number and every key a selection asks for is there (the plain lists then decide, and raise what they raise)."""
    names, matrix = _matrix(xs)
    if matrix.dtype != np.float64 or matrix.ndim != 2 or not np.isfinite(matrix).all():
        return False
    columns: list[Any] = names
    updates: list[tuple[Any, list[Any], tuple[np.ndarray, np.ndarray, np.ndarray]]] = []
    for step in steps:  # nothing written until every row went through
        if isinstance(step, compose.Select):
            order = getattr(step, "ordered", None)
            if order is None and not set(step.keys) <= set(columns):
                return False  # River's Select raises on an absent key: the plain lists raise it
            kept = [c for c in (order if order is not None else step.keys) if c in columns]
            matrix, columns = matrix[:, [columns.index(c) for c in kept]], kept
            continue
        matrix, statistics = _scaled_matrix(step, columns, matrix)
        updates.append((step, columns, statistics))
    head = _head(model)
    intercept, weights = _sgd_matrix(head, columns, matrix, ys)
    for scaler, names_of, (counts, means, variances) in updates:
        for column, count, mean, var in zip(names_of, counts.tolist(), means.tolist(), variances.tolist(), strict=True):
            _set_statistics(scaler, column, (count, mean, var))
    _set_head(head, columns, intercept, weights, matrix.shape[0])
    return True


def _scaled_matrix(
    scaler: Any, columns: list[Any], matrix: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`_scaled` of every column of ``matrix`` at once: each row scaled with the running mean and variance up
    to it (``learn_one`` then ``transform_one``), from shifted prefix sums instead of Welford's recurrence (equal
    to float rounding; the shift is the mean so far, or the column's first value, so a column that never changed
    has a variance of exactly 0, as in ``learn_one``); the statistics after the last row, none written.

    >>> from river import preprocessing
    >>> one, many = preprocessing.StandardScaler(), preprocessing.StandardScaler()
    >>> rows = [[1.0, 5.0], [2.0, 5.0], [4.0, 5.0]]
    >>> expected = [list(one.learn_one(dict(enumerate(r))) or one.transform_one(dict(enumerate(r))).values())
    ...             for r in rows]
    >>> out, (counts, means, variances) = _scaled_matrix(many, [0, 1], np.array(rows))
    >>> np.allclose(out, expected, rtol=1e-12), counts.tolist(), np.allclose(means, [7 / 3, 5.0])
    (True, [3, 3], True)
    """
    n = matrix.shape[0]
    count0 = np.array([scaler.counts[c] for c in columns], dtype=np.int64)
    mean0 = np.array([scaler.means[c] for c in columns], dtype=np.float64)
    shift = np.where(count0 > 0, mean0, matrix[0])
    seen = count0[None, :] + np.arange(1, n + 1, dtype=np.int64)[:, None]
    deviations = matrix - shift
    first = np.cumsum(deviations, axis=0) + count0 * (mean0 - shift)
    means = shift + first / seen
    if not scaler.with_std:
        return matrix - means, (seen[-1], means[-1], mean0 * 0.0)
    var0 = np.array([scaler.vars[c] for c in columns], dtype=np.float64)
    second = np.cumsum(deviations * deviations, axis=0) + count0 * (var0 + (mean0 - shift) ** 2)
    variances = np.maximum((second - first * first / seen) / seen, 0.0)
    stds = np.sqrt(variances)
    out = np.zeros_like(matrix)
    np.divide(matrix - means, stds, out=out, where=variances > 0)
    return out, (seen[-1], means[-1], variances[-1])


def _sgd_matrix(head: Any, columns: list[Any], matrix: np.ndarray, ys: Sequence[Any]) -> tuple[float, list[float]]:
    """:func:`_sgd` on the rows of ``matrix``, :data:`SGD_BLOCK` rows at a time: a row's raw output is the block's
    start weights' (one product for the block) less the steps of the block's earlier rows (their gradients times
    the block's Gram matrix), so only the gradients are computed row by row; the weights move once per block. The
    same steps as :func:`_sgd` to float rounding; ``head`` is not written. River's log loss takes
    :func:`_sgd_log`; any other loss, or a log loss its fast path leaves, the generic loop below."""
    terms = _log_signs(head.loss, ys)
    if terms is not None and matrix.shape[0]:
        loss, clip = head.loss, head.clip_gradient
        if max(abs(loss.weight_pos), abs(loss.weight_neg)) < clip:  # |gradient| <= its weight: never clipped
            fast = _sgd_log(head, columns, matrix, *terms)
            if fast is not None:
                return fast
    weights = np.array([head._weights.get(c, 0.0) for c in columns], dtype=np.float64)
    lr, intercept_lr = head.optimizer.lr.learning_rate, head.intercept_lr.learning_rate
    gradient_of, clip = head.loss.gradient, head.clip_gradient
    intercept = head.intercept
    for start in range(0, matrix.shape[0], SGD_BLOCK):
        block = matrix[start : start + SGD_BLOCK]
        raw = (block @ weights).tolist()
        steps = (lr * (block @ block.T)).tolist()
        gradients: list[float] = []
        for row, y in enumerate(ys[start : start + SGD_BLOCK]):
            before = sum(map(operator.mul, gradients, steps[row]))  # the earlier rows' weight steps
            loss_gradient = gradient_of(y_true=y, y_pred=raw[row] - before + intercept)
            loss_gradient = max(-clip, min(clip, float(loss_gradient)))
            intercept -= intercept_lr * loss_gradient
            gradients.append(loss_gradient)
        weights = weights - lr * (np.array(gradients) @ block)
    return intercept, weights.tolist()


def _log_signs(loss: Any, ys: Sequence[Any]) -> tuple[np.ndarray, list[float]] | None:
    """For River's ``Log`` loss, each label's sign (as floats) and its weight times minus its sign, from
    :func:`_log_terms` (raising what it raises), or at once for labels that are all bools; None for another loss.

    >>> loss = optim.losses.Log(weight_neg=2)
    >>> (signs, scales), (int_signs, int_scales) = _log_signs(loss, [True, False] * 40), _log_signs(loss, [1, 0] * 40)
    >>> signs[:2].tolist(), scales[:2], signs.tolist() == int_signs.tolist() and scales == int_scales
    ([1.0, -1.0], [-1.0, 2.0], True)
    """
    if type(loss) is not optim.losses.Log:
        return None
    if len(ys) >= MIN_ROWS and set(map(type, ys)) == {bool}:
        positive = np.array(ys, dtype=bool)
        scales = np.where(positive, float(loss.weight_pos * -1), float(loss.weight_neg * 1)).tolist()
        return np.where(positive, 1.0, -1.0), scales
    log = _log_terms(loss, ys)
    return np.array([sign for sign, _ in log], dtype=np.float64), [float(weight * -sign) for sign, weight in log]


def _sgd_log(
    head: Any, columns: list[Any], matrix: np.ndarray, signs: np.ndarray, scales: list[float]
) -> tuple[float, list[float]] | None:
    """:func:`_sgd_matrix` for River's log loss when no gradient can be clipped, with fewer Python operations a
    row: the intercept is one more weight (a column of ones, its own learning rate), each row is multiplied by its
    label's sign (``Log.gradient``'s ``z`` is the raw output times the sign: the rows' products come out signed),
    the learning rates are in the Gram matrices, computed for every block in one product, and each label's weight
    times minus its sign is taken once. ``Log.gradient``'s branches and arithmetic, the same floats a gradient;
    the sums are the same to float rounding. None when a gradient came out NaN (the generic loop clips it as
    River does).

    >>> from river import linear_model
    >>> head = linear_model.LogisticRegression()
    >>> matrix, ys = np.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]]), [True, False, True]
    >>> fast = _sgd_log(head, [0, 1], matrix, *_log_signs(head.loss, ys))
    >>> plain = _sgd(head, [0, 1], matrix.tolist(), ys)
    >>> np.allclose(fast[1] + [fast[0]], plain[1] + [plain[0]], rtol=1e-12, atol=1e-15)
    True
    """
    n, width = matrix.shape
    lr, intercept_lr = head.optimizer.lr.learning_rate, head.intercept_lr.learning_rate
    rows = np.empty((n, width + 1))
    rows[:, :width], rows[:, width] = matrix, 1.0
    rates = np.full(width + 1, lr, dtype=np.float64)
    rates[width] = intercept_lr
    signed, stepped = rows * signs[:, None], rows * rates  # a row's output, and its step per unit of gradient
    weights = np.array([head._weights.get(c, 0.0) for c in columns] + [head.intercept], dtype=np.float64)
    full = n - n % SGD_BLOCK
    shape = (-1, SGD_BLOCK, width + 1)
    grams = np.matmul(signed[:full].reshape(shape), stepped[:full].reshape(shape).transpose(0, 2, 1)).tolist()
    if full < n:
        grams.append((signed[full:] @ stepped[full:].T).tolist())
    exp, mul = math.exp, operator.mul
    for block, start in enumerate(range(0, n, SGD_BLOCK)):
        stop = start + SGD_BLOCK
        gradients: list[float] = []
        append = gradients.append
        for value, steps, scale in zip((signed[start:stop] @ weights).tolist(), grams[block], scales[start:stop]):  # noqa: B905
            z = value - sum(map(mul, gradients, steps))  # River's Log.gradient from here, its branches inlined
            if z > 18.0:
                append(scale * exp(-z))
            elif z < -18.0:
                append(scale)
            else:
                append(scale / (exp(z) + 1.0))
        weights -= np.dot(gradients, stepped[start:stop])
    if np.isnan(weights).any():
        return None
    out = weights.tolist()
    return out[width], out[:width]


def _log_terms(loss: Any, ys: Sequence[Any]) -> list[tuple[int, float]] | None:
    """For River's ``Log`` loss, each label's sign and weight as ``Log.gradient`` takes them (raising what it
    raises on a label it cannot take); None for any other loss.

    >>> _log_terms(optim.losses.Log(weight_neg=2.0), [True, False, 1]), _log_terms(optim.losses.Squared(), [1.0])
    ([(1, 1.0), (-1, 2.0), (1, 1.0)], None)
    """
    if type(loss) is not optim.losses.Log:
        return None
    negative, positive = (-1, loss.weight_neg), loss.weight_pos
    return [negative if y == 0 else (int(y), positive) for y in ys]


def _columns(xs: Sequence[dict[str, Any]], names: list[Any]) -> dict[Any, list[Any]]:
    """The values of each of ``names`` (present in every row) down the rows ``xs``, transposed in C.

    >>> _columns([{"a": 1.0, "b": 2.0}, {"b": 4.0, "a": 3.0}], ["a", "b"]), _columns([{"a": 1.0}], ["a"])
    ({'a': [1.0, 3.0], 'b': [2.0, 4.0]}, {'a': [1.0]})
    """
    if len(names) < 2 or not xs:
        return {name: [x[name] for x in xs] for name in names}
    return dict(zip(names, map(list, zip(*_rows(xs, names), strict=True)), strict=True))


def _matrix(xs: Sequence[Mapping[str, Any]]) -> tuple[list[Any], np.ndarray]:
    """The feature names of ``xs`` (the keys of the first row, present in every row) and their values as one array,
    a row each: the matrix of :class:`~driftline.models.feature_rows.FeatureRows` as it is (the same values).

    >>> _matrix([{"a": 1.0, "b": 2}, {"b": 4.0, "a": 3.0}])
    (['a', 'b'], array([[1., 2.],
           [3., 4.]]))
    """
    kept = matrix_of(xs)
    if kept is not None:
        return list(kept[0]), kept[1]
    names = list(xs[0])
    return names, np.array(_rows(xs, names) if len(names) > 1 else [[x[c] for c in names] for x in xs])


def _rows(xs: Sequence[Mapping[str, Any]], names: list[Any]) -> list[tuple[Any, ...]]:
    """The values of ``names`` (at least two, present in every row) of each row of ``xs``, as tuples."""
    return list(map(operator.itemgetter(*names), xs))


def _select(step: Any, columns: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
    """``step.transform_many``'s columns, in its order (SelectPresent: sorted, absent keys skipped)."""
    order = getattr(step, "ordered", None)
    if order is None:
        return {key: columns[key] for key in step.keys}  # River's Select: a key absent raises, as transform_many
    return {key: columns[key] for key in order if key in columns}


def _through(step: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` after ``step`` learned and transformed its rows one by one (learn, then transform, as
    ``Pipeline.learn_one`` does)."""
    if isinstance(step, compose.TransformerUnion):
        return pd.concat([_through(part, frame) for part in step.transformers.values()], axis=1)
    if isinstance(step, compose.Pipeline):
        for part in step.steps.values():
            frame = _through(part, frame)
        return frame
    if type(step) is preprocessing.StandardScaler:
        return pd.DataFrame({column: _scale(step, column, frame[column].tolist()) for column in frame.columns})
    if hasattr(step, "learn_many"):
        step.learn_many(frame)
    return step.transform_many(frame)


def _scale(scaler: Any, column: Any, values: list[float]) -> list[float]:
    """``StandardScaler.learn_one`` then ``transform_one`` of each value of one column, in order (the same
    arithmetic in the same order: the statistics end bit for bit where ``learn_one`` leaves them)."""
    out, statistics = _scaled(scaler, column, values)
    _set_statistics(scaler, column, statistics)
    return out


def _scaled(scaler: Any, column: Any, values: list[float]) -> tuple[list[float], tuple[int, float, float]]:
    """:func:`_scale`'s output and the column's statistics after it (count, mean, variance), none written."""
    count, mean, var = scaler.counts[column], scaler.means[column], scaler.vars[column]
    out = []
    if scaler.with_std:
        for value in values:
            count += 1
            old_mean = mean
            mean += (value - old_mean) / count
            var += ((value - old_mean) * (value - mean) - var) / count
            out.append((value - mean) / var**0.5 if var else 0.0)
    else:
        for value in values:
            count += 1
            mean += (value - mean) / count
            out.append(value - mean)
    return out, (count, mean, var)


def _set_statistics(scaler: Any, column: Any, statistics: tuple[int, float, float]) -> None:
    count, mean, var = statistics
    scaler.counts[column], scaler.means[column] = count, mean
    if scaler.with_std:
        scaler.vars[column] = var


def sgd_steps(head: Any, frame: pd.DataFrame, ys: Sequence[Any]) -> None:
    """One ``learn_one`` SGD step of River's linear ``head`` per row of ``frame`` (features already transformed),
    in order: the same loss gradient, intercept step and weight step, on a dense vector of the batch's columns.

    A zero in a row (e.g. a category the row does not have) gets a zero gradient, as its absence does in
    ``learn_one`` (no L2 term: :func:`supports_rows` requires none).
    """
    _sgd_rows(head, list(frame.columns), frame.to_numpy(dtype=float).tolist(), ys)


def _sgd_rows(head: Any, columns: list[Any], rows: list[list[float]], ys: Sequence[Any]) -> None:
    """:func:`sgd_steps` on ``rows`` of floats in the order of ``columns``."""
    intercept, weights = _sgd(head, columns, rows, ys)
    _set_head(head, columns, intercept, weights, len(rows))


def _sgd(head: Any, columns: list[Any], rows: list[list[float]], ys: Sequence[Any]) -> tuple[float, list[float]]:
    """The intercept and the weights of ``columns`` after :func:`sgd_steps` on ``rows``; ``head`` is not written."""
    weights = [head._weights.get(c, 0.0) for c in columns]
    lr, intercept_lr = head.optimizer.lr.learning_rate, head.intercept_lr.learning_rate
    gradient_of, clip = head.loss.gradient, head.clip_gradient
    intercept = head.intercept
    for row, y in zip(rows, ys, strict=True):
        loss_gradient = gradient_of(y_true=y, y_pred=sum(map(operator.mul, row, weights)) + intercept)
        loss_gradient = max(-clip, min(clip, float(loss_gradient)))
        intercept -= intercept_lr * loss_gradient
        weights = [w - lr * (x * loss_gradient) for w, x in zip(weights, row, strict=True)]
    return intercept, weights


def _set_head(head: Any, columns: list[Any], intercept: float, weights: list[float], rows: int) -> None:
    head.intercept = intercept
    head.optimizer.n_iterations += rows
    for column, weight in zip(columns, weights, strict=True):
        if weight != 0.0 or column in head._weights:
            head._weights[column] = weight


def predict_rows(model: Any, xs: Sequence[dict[str, Any]]) -> list[Any] | None:
    """``model.predict_many`` of the rows ``xs`` computed on one float matrix with River's own NumPy operations
    (the same numbers, bit for bit, without a DataFrame per step); None unless ``model`` is a pipeline of
    selections and plain standard scalers ahead of a ``LogisticRegression`` or ``LinearRegression`` and every row
    holds the same finite numbers (then ``predict_many`` or ``predict_one`` must do it).

    >>> from driftline.models.features import FeatureSchema
    >>> from driftline.models.specs import build_model
    >>> model = build_model(FeatureSchema({"x": "numeric", "z": "numeric"}), "binary")
    >>> rows = [{"x": float(i % 7), "z": i / 10} for i in range(100)]
    >>> learn_rows(model, rows, [x["x"] > 3 for x in rows])
    True
    >>> predict_rows(model, rows) == model.predict_many(pd.DataFrame(rows)).tolist()
    True
    """
    if not isinstance(model, compose.Pipeline) or not xs:
        return None
    head = list(model.steps.values())[-1]
    steps = _transformers(model)
    if type(head) not in (linear_model.LogisticRegression, linear_model.LinearRegression) or not all(
        isinstance(step, compose.Select) or (type(step) is preprocessing.StandardScaler and step.window_size is None)
        for step in steps
    ):
        return None
    first = xs[0].keys()
    if matrix_of(xs) is None and any(x.keys() != first for x in xs):
        return None
    columns, matrix = _matrix(xs)  # floats (or ints beside them) only: float64
    if matrix.dtype != np.float64 or not np.isfinite(matrix).all():
        return None
    for step in steps:
        if isinstance(step, compose.Select):
            order = getattr(step, "ordered", None)  # SelectPresent skips absent keys; River's Select raises
            if order is None and not set(step.keys) <= set(columns):
                return None
            order = order if order is not None else list(step.keys)
            kept = [c for c in order if c in columns]
            matrix = matrix[:, [columns.index(c) for c in kept]]
            columns = kept
            continue
        matrix = matrix - np.array([step.means[c] for c in columns], dtype=np.float64)
        if step.with_std:
            stds = np.array([step.vars[c] ** 0.5 for c in columns], dtype=np.float64)
            np.divide(matrix, stds, where=stds > 0, out=matrix)
    values = head.loss.mean_func(head._raw_dot_many(matrix, columns))
    if type(head) is linear_model.LogisticRegression:
        return (values > 0.5).tolist()
    return None if np.isnan(values).any() else values.tolist()
