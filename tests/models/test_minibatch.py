"""Batch learning of River linear pipelines: the head's SGD steps are exactly learn_one's, the pipeline ends where
learning one row at a time ends, and every other model or batch is left to learn_one."""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import linear_model, multiclass, preprocessing, tree

from driftline.models import minibatch
from driftline.models.features import FeatureSchema
from driftline.models.minibatch import MIN_ROWS, learn_rows, on_plain_lists, predict_rows, sgd_steps, supports_rows
from driftline.models.specs import build_model

SCHEMA = FeatureSchema({"x": "numeric", "z": "numeric", "c": "categorical"})


def rows(n: int, seed: int = 1) -> list[tuple[dict[str, Any], bool]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        x = {"x": rng.gauss(3, 2), "z": rng.gauss(-50, 10), "c": rng.choice("abcd")}
        out.append((x, (x["x"] > 3) ^ (x["c"] == "b") ^ (rng.random() < 0.1)))
    return out


def head(model: Any) -> Any:
    return list(model.steps.values())[-1]


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_sgd_steps_are_exactly_learn_ones_steps(task: str) -> None:
    """Given the same transformed rows, the head's weights and intercept after sgd_steps equal learn_one's
    one row at a time (River's own learn_many takes one mean-gradient step: far from it)."""
    import pandas as pd

    data = [({"a": x["x"], "b": x["z"] / 50, "c_a": float(x["c"] == "a")}, y) for x, y in rows(400)]
    if task == "regression":
        data = [(x, 2 * x["a"] - x["b"] + float(y)) for x, y in data]
    one = build_model(FeatureSchema({"a": "numeric"}), task)
    sequential, batched, river_many = head(one), copy.deepcopy(head(one)), copy.deepcopy(head(one))
    for x, y in data:
        sequential.learn_one(x, y)
    frame = pd.DataFrame([x for x, _ in data])
    sgd_steps(batched, frame, [y for _, y in data])
    river_many.learn_many(frame, pd.Series([y for _, y in data]))
    assert batched.intercept == pytest.approx(sequential.intercept, rel=1e-9, abs=1e-12)
    assert batched.optimizer.n_iterations == sequential.optimizer.n_iterations == len(data)
    for feature, weight in sequential._weights.items():
        assert batched._weights[feature] == pytest.approx(weight, rel=1e-9, abs=1e-12)
    assert max(abs(river_many._weights[f] - w) for f, w in sequential._weights.items()) > 0.01


def test_a_pipeline_learned_in_batches_predicts_as_one_learned_row_by_row() -> None:
    """Scaler, one-hot encoder and head learned batch by batch end where learn_one row by row ends: the scaler's
    statistics bit for bit, every probability to the last bits of a sum."""
    data = rows(6000)
    one, many = build_model(SCHEMA, "binary"), build_model(SCHEMA, "binary")
    for x, y in data:
        one.learn_one(x, y)
    for start in range(0, len(data), 500):
        chunk = data[start : start + 500]
        assert learn_rows(many, [x for x, _ in chunk], [y for _, y in chunk]) is True
    probes = [x for x, _ in rows(300, seed=2)]
    assert [many.predict_proba_one(x)[True] for x in probes] == pytest.approx(
        [one.predict_proba_one(x)[True] for x in probes], rel=1e-9, abs=1e-12
    )
    (scaler_one,), (scaler_many,) = (
        [
            step
            for part in model["TransformerUnion"].transformers.values()
            for step in part.steps.values()
            if isinstance(step, preprocessing.StandardScaler)
        ]
        for model in (one, many)
    )
    assert scaler_one.counts["x"] == len(data) and scaler_many.counts == scaler_one.counts
    assert scaler_many.means == scaler_one.means and scaler_many.vars == scaler_one.vars


def test_models_and_batches_the_batch_path_does_not_reproduce_are_left_to_learn_one() -> None:
    """A tree, a one-vs-rest multiclass, an L2 head, a small batch or rows with an absent feature: False, unchanged."""
    assert not supports_rows(tree.HoeffdingTreeClassifier())
    assert not supports_rows(build_model(SCHEMA, "multiclass"))
    assert isinstance(head(build_model(SCHEMA, "multiclass")), multiclass.OneVsRestClassifier)
    l2 = build_model(SCHEMA, "binary", l2=0.01)
    assert isinstance(head(l2), linear_model.LogisticRegression) and not supports_rows(l2)
    model = build_model(SCHEMA, "binary")
    assert supports_rows(model)
    data = rows(MIN_ROWS)
    before = copy.deepcopy(model)
    assert learn_rows(model, [x for x, _ in data[:-1]], [y for _, y in data[:-1]]) is False
    absent = [dict(x) for x, _ in data]
    del absent[5]["z"]
    assert learn_rows(model, absent, [y for _, y in data]) is False
    probe = data[0][0]
    assert model.predict_proba_one(probe) == before.predict_proba_one(probe)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_predictions_on_one_matrix_are_predict_manys_bit_for_bit(task: str) -> None:
    """The staged copy's predictions: River's ``predict_many`` figures exactly, for the numeric pipeline (also with
    a feature the model never saw, a constant one and rows in another key order)."""
    numeric = FeatureSchema({"x": "numeric", "z": "numeric", "k": "numeric"})
    model = build_model(numeric, task)
    data = [({"x": x["x"], "z": x["z"], "k": 1.0}, y if task == "binary" else x["x"] * 2.0) for x, y in rows(300)]
    for x, y in data[:200]:
        model.learn_one(x, y)
    probes = [{"z": x["z"], "k": 1.0, "x": x["x"], "new": 5.0} for x, _ in data[200:]]
    expected = model.predict_many(pd.DataFrame(probes)).tolist()
    assert predict_rows(model, probes) == expected
    assert predict_rows(model, [dict(p, z=float("nan")) for p in probes]) is None  # predict_one decides those


def test_models_and_rows_not_on_one_float_matrix_are_left_to_predict_many() -> None:
    """A categorical feature (one-hot), a tree, text where a number belongs, an absent feature: None."""
    data = rows(100)
    assert predict_rows(build_model(SCHEMA, "binary"), [x for x, _ in data]) is None
    assert predict_rows(tree.HoeffdingTreeClassifier(), [{"x": 1.0}]) is None
    numeric = build_model(FeatureSchema({"x": "numeric"}), "binary")
    assert predict_rows(numeric, [{"x": 1.0}, {"x": "2"}]) is None
    assert predict_rows(numeric, [{"x": 1.0}, {"y": 2.0}]) is None
    assert predict_rows(numeric, [{"x": 1.0}, {"x": 2.0}]) == [False, False]


@pytest.mark.parametrize("path", ["plain lists", "matrix"])
def test_a_numeric_pipeline_learns_without_a_dataframe_where_learn_one_ends(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Selection and scaler ahead of the head (the Agrawal model's shape) learn without any DataFrame, and end
    where learn_one ends (ints among the floats too): on the plain lists the scaler bit for bit, on the matrix (the
    path finite numbers take) to float rounding; the head to the last bits of a sum on both."""
    if path == "plain lists":
        monkeypatch.setattr(minibatch, "_learn_matrix", lambda *_: False)
    numeric = FeatureSchema({"x": "numeric", "z": "numeric"})
    data = [({"x": x["x"], "z": round(x["z"]) if i % 3 else x["z"]}, y) for i, (x, y) in enumerate(rows(2000))]
    one, many = build_model(numeric, "binary"), build_model(numeric, "binary")
    for x, y in data:
        one.learn_one(x, y)

    def no_frame(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a DataFrame was built")

    monkeypatch.setattr(pd, "DataFrame", no_frame)
    for start in range(0, len(data), 500):
        chunk = data[start : start + 500]
        assert learn_rows(many, [x for x, _ in chunk], [y for _, y in chunk]) is True
    scaler_one, scaler_many = (list(model.steps.values())[1] for model in (one, many))
    assert scaler_many.counts == scaler_one.counts
    if path == "plain lists":
        assert scaler_many.means == scaler_one.means and scaler_many.vars == scaler_one.vars
    for column in ("x", "z"):
        assert scaler_many.means[column] == pytest.approx(scaler_one.means[column], rel=1e-12)
        assert scaler_many.vars[column] == pytest.approx(scaler_one.vars[column], rel=1e-12)
    assert head(many).intercept == pytest.approx(head(one).intercept, rel=1e-9, abs=1e-12)
    for feature, weight in head(one)._weights.items():
        assert head(many)._weights[feature] == pytest.approx(weight, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("bad", ["feature", "label"])
def test_a_batch_on_plain_lists_that_raises_leaves_the_model_as_it_was(bad: str) -> None:
    """Text where a number belongs in the last row's second feature, or a label the loss cannot take in the last
    row: learn_rows raises and the scalers and the head are what they were (nothing to undo with a copy)."""
    numeric = FeatureSchema({"x": "numeric", "z": "numeric"})
    model = build_model(numeric, "binary")
    data = [({"x": x["x"], "z": x["z"]}, y) for x, y in rows(300)]
    assert on_plain_lists(model) and learn_rows(model, [x for x, _ in data[:150]], [y for _, y in data[:150]])
    xs, ys = [dict(x) for x, _ in data[150:]], [y for _, y in data[150:]]
    if bad == "feature":
        xs[-1]["z"] = "oops"
    else:
        ys[-1] = None
    before = copy.deepcopy(model)
    with pytest.raises((TypeError, ValueError)):
        learn_rows(model, xs, ys)
    scaler, scaler_before = list(model.steps.values())[1], list(before.steps.values())[1]
    assert (scaler.counts, scaler.means, scaler.vars) == (scaler_before.counts, scaler_before.means, scaler_before.vars)
    assert head(model).intercept == head(before).intercept and head(model)._weights == head(before)._weights
    assert head(model).optimizer.n_iterations == head(before).optimizer.n_iterations


def _batches(draw: Any, task: str) -> tuple[list[str], list[list[dict[str, Any]]], list[list[Any]]]:
    """Random numeric batches: a few features, each on its own scale and offset (some constant for a while, some
    whole numbers), labels that follow them loosely, cut in batches of random sizes (at least MIN_ROWS)."""
    names = [f"f{i}" for i in range(draw(st.integers(1, 6)))]
    scales = {n: draw(st.sampled_from([1e-3, 1.0, 30.0, 1e4])) for n in names}
    # an offset of up to 100 spreads: both River's Welford means and the prefix sums lose bits to larger ones
    offsets = {n: draw(st.floats(-100, 100)) * scales[n] for n in names}
    whole = {n: draw(st.booleans()) for n in names}
    constant_until = {n: draw(st.sampled_from([0, 0, 10, 200])) for n in names}
    rng = random.Random(draw(st.integers(0, 2**32)))
    sizes = draw(st.lists(st.integers(MIN_ROWS, 260), min_size=1, max_size=4))
    xs_all, ys_all, xss, yss = [], [], [], []
    for size in sizes:
        xs, ys = [], []
        for _ in range(size):
            row = {}
            for n in names:
                value = offsets[n] if len(xs_all) < constant_until[n] else offsets[n] + rng.gauss(0, 1) * scales[n]
                row[n] = float(round(value)) if whole[n] else value
            target = sum((row[n] - offsets[n]) / scales[n] for n in names) + rng.gauss(0, 0.5)
            y: Any = target > 0 if task == "binary" else target * 3.0
            xs.append(row), ys.append(y), xs_all.append(row), ys_all.append(y)
        xss.append(xs), yss.append(ys)
    return names, xss, yss


@pytest.mark.parametrize("task", ["binary", "regression"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_learn_rows_on_one_matrix_ends_where_river_learn_one_ends(task: str, data: Any) -> None:
    """Property: on random numeric batches, the matrix path (scalers from prefix sums, SGD a block at a time from
    Gram matrices) leaves the scaler's statistics and the head where River's learn_one, row by row, leaves them,
    to float tolerance; the matrix path is the one taken (no plain lists, no DataFrame)."""
    names, xss, yss = _batches(data.draw, task)
    schema = FeatureSchema({n: "numeric" for n in names})
    one, many = build_model(schema, task), build_model(schema, task)
    for xs, ys in zip(xss, yss, strict=True):
        for x, y in zip(xs, ys, strict=True):
            one.learn_one(x, y)
        assert learn_rows(many, xs, ys) is True
    scaler_one, scaler_many = (list(model.steps.values())[1] for model in (one, many))
    assert dict(scaler_many.counts) == dict(scaler_one.counts)
    for n in names:
        assert scaler_many.means[n] == pytest.approx(scaler_one.means[n], rel=1e-9, abs=1e-9)
        assert scaler_many.vars[n] == pytest.approx(scaler_one.vars[n], rel=1e-9, abs=1e-12)
        assert (scaler_many.vars[n] == 0) == (scaler_one.vars[n] == 0)
    assert head(many).optimizer.n_iterations == head(one).optimizer.n_iterations
    assert head(many).intercept == pytest.approx(head(one).intercept, rel=1e-9, abs=1e-9)
    for n in names:
        assert head(many)._weights.get(n, 0.0) == pytest.approx(head(one)._weights.get(n, 0.0), rel=1e-9, abs=1e-9)


def test_the_matrix_path_is_taken_for_numbers_and_left_for_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finite numbers: the matrix (no plain lists); a NaN or text: the plain lists, which learn or raise as before."""
    model = build_model(FeatureSchema({"x": "numeric", "z": "numeric"}), "binary")
    data = [({"x": x["x"], "z": x["z"]}, y) for x, y in rows(200)]
    calls: list[str] = []
    real = minibatch._columns
    monkeypatch.setattr(minibatch, "_columns", lambda *a: calls.append("lists") or real(*a))
    assert learn_rows(model, [x for x, _ in data[:100]], [y for _, y in data[:100]]) and calls == []
    nan = [dict(x) for x, _ in data[100:]]
    nan[3]["x"] = float("nan")
    assert learn_rows(model, nan, [y for _, y in data[100:]]) and calls == ["lists"]
    assert np.isnan(list(model.steps.values())[1].means["x"])


@settings(max_examples=120, deadline=None)
@given(
    rows=st.integers(1, 150),
    width=st.integers(1, 5),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 1e4]),
    weights=st.sampled_from([(1.0, 1.0), (2, 1), (0.5, 3.0)]),
    clip=st.sampled_from([1e12, 0.5, 0.01]),
    lr=st.sampled_from([0.01, 0.5]),
    intercept_lr=st.sampled_from([0.01, 0.0]),
    seed=st.integers(0, 2**16),
)
def test_the_block_sgd_steps_are_the_row_by_row_steps(rows, width, scale, weights, clip, lr, intercept_lr, seed):
    """Property: the block SGD loop (the log loss's fast path: the intercept a weight, signed rows, each label's
    weight taken once; else the generic loop) leaves the intercept and the weights where River's steps row by row
    (:func:`minibatch._sgd`) leave them, to float rounding: both branches past |z| > 18, clipped gradients (the
    generic loop), integer class weights, an intercept that does not learn."""
    from river import optim

    rng = np.random.default_rng(seed)
    head = linear_model.LogisticRegression(
        optimizer=optim.SGD(lr),
        loss=optim.losses.Log(weight_pos=weights[0], weight_neg=weights[1]),
        clip_gradient=clip,
        intercept_lr=intercept_lr,
    )
    columns = list(range(width))
    head._weights.update({c: float(w) for c, w in zip(columns, rng.normal(0, 1, width), strict=True)})
    head.intercept = float(rng.normal())
    matrix = rng.normal(0, scale, (rows, width))
    ys = (rng.random(rows) < 0.5).tolist()
    intercept, weights_after = minibatch._sgd_matrix(head, columns, matrix, ys)
    expected_intercept, expected = minibatch._sgd(head, columns, matrix.tolist(), ys)
    assert intercept == pytest.approx(expected_intercept, rel=1e-9, abs=1e-9)
    assert weights_after == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_a_nan_gradient_leaves_the_fast_log_loop_for_the_clipping_one() -> None:
    """A NaN output (weights already NaN) makes a NaN gradient, which River clips: the fast loop hands the batch to
    the generic loop, which ends where River's steps row by row end (NaN where they are NaN)."""
    head = linear_model.LogisticRegression()
    head._weights.update({0: float("nan"), 1: 1.0})
    matrix, ys = np.random.default_rng(3).normal(0, 1, (40, 2)), [True, False] * 20
    assert minibatch._sgd_log(head, [0, 1], matrix, *minibatch._log_signs(head.loss, ys)) is None
    intercept, weights = minibatch._sgd_matrix(head, [0, 1], matrix, ys)
    expected_intercept, expected = minibatch._sgd(head, [0, 1], matrix.tolist(), ys)
    np.testing.assert_allclose([intercept, *weights], [expected_intercept, *expected], rtol=1e-12, equal_nan=True)
