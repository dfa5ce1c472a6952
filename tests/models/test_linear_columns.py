"""The per-column linear path: equal, to the bit, to River's predict_proba_one / predict_one on every row."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import linear_model, tree

from driftline.models.feature_columns import prepare_columns
from driftline.models.features import FeatureSchema
from driftline.models.linear_columns import linear_plan
from driftline.models.specs import build_model

finite = st.floats(-1e4, 1e4, allow_nan=False)
category = st.sampled_from(["a", "b", "c", "dd", "7"])


@st.composite
def trained(draw: st.DrawFn) -> tuple:
    """A model of build_model for a random schema, trained on random rows, and random rows to score."""
    numeric = draw(st.integers(0, 4))
    categorical = draw(st.integers(0 if numeric else 1, 3))
    kinds = {f"n{i}": "numeric" for i in range(numeric)} | {f"c{i}": "categorical" for i in range(categorical)}
    schema = FeatureSchema(dict(draw(st.permutations(list(kinds.items())))))
    task = draw(st.sampled_from(["binary", "regression"]))

    def row() -> dict:
        out = {}
        for name, kind in schema.kinds.items():
            if draw(st.integers(0, 5)):  # sometimes missing (imputed)
                out[name] = draw(finite) if kind == "numeric" else draw(category)
        return out

    model = build_model(schema, task)
    for _ in range(draw(st.integers(0, 30))):
        model.learn_one(row(), draw(st.booleans()) if task == "binary" else draw(finite))
    return schema, task, model, [row() for _ in range(draw(st.integers(1, 20)))]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], deadline=None)
@given(trained())
def test_the_plan_gives_rivers_own_output_on_every_row(case):
    schema, task, model, rows = case
    plan = linear_plan(model, task)
    assert plan is not None
    columns, errors = prepare_columns(schema, rows)
    assert errors == []
    if task == "binary":
        expected = [model.predict_proba_one(schema.prepare(r))[True] for r in rows]
        assert plan.positive_probabilities(columns).tolist() == expected
    else:
        assert plan.raw(columns).tolist() == [model.predict_one(schema.prepare(r)) for r in rows]


def test_models_the_plan_does_not_know_are_left_to_the_generic_path():
    schema = FeatureSchema({"x": "numeric"})
    assert linear_plan(build_model(schema, "multiclass"), "multiclass") is None
    assert linear_plan(tree.HoeffdingTreeClassifier(), "binary") is None
    assert linear_plan(linear_model.LogisticRegression(), "binary") is None  # no feature step to read
    # a one-hot key that could also be another feature's name would merge two terms
    assert linear_plan(build_model(FeatureSchema({"c": "categorical", "c_a": "numeric"}), "binary"), "binary") is None
