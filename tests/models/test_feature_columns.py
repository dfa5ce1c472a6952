"""prepare_columns: the same rows and the same reasons as FeatureSchema.prepare, one row at a time."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.models.feature_columns import prepare_columns
from driftline.models.features import FeatureError, FeatureSchema

SCHEMA = FeatureSchema({"a": "numeric", "b": "numeric", "c": "categorical", "d": "numeric", "e": "categorical"})
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.just([1.0]),
)
plain = st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 1000), st.sampled_from(["x", "y"]))
rows = st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e", "z"]), st.one_of(plain, values), max_size=6)


def one_at_a_time(row: dict, missing: str, unknown: str) -> tuple:
    try:
        return ("ok", SCHEMA.prepare(row, missing, unknown))  # type: ignore[arg-type]
    except FeatureError as error:
        return ("error", str(error))
    except Exception as error:  # noqa: BLE001 - the columns report any failure as the row's reason too
        return ("error", str(error))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(rows, max_size=12), st.sampled_from(["impute", "reject"]), st.sampled_from(["ignore", "reject"]))
def test_columns_prepare_each_row_as_the_schema_does(batch, missing, unknown):
    columns, errors = prepare_columns(SCHEMA, batch, missing, unknown)
    outcome = {i: ("error", str(error)) for i, error in errors}
    for i, row in zip(columns.kept, columns.rows(), strict=True):
        outcome[i] = ("ok", row)
    expected = {i: one_at_a_time(row, missing, unknown) for i, row in enumerate(batch)}
    # a number of 2**63 or more is re-read by the caller (orjson reads such integers as floats): compare as floats
    big = {i for i, row in enumerate(batch) if any(type(v) in (int, float) and abs(v) >= 2**63 for v in row.values())}
    assert {i: o for i, o in outcome.items() if i not in big} == {i: o for i, o in expected.items() if i not in big}
    assert set(outcome) == set(expected)


def test_a_row_with_a_big_number_is_prepared_from_the_contracts_own_reading():
    # orjson reads 10**30 as 1e30; the contract keeps the integer, and a category is its decimal digits
    schema = FeatureSchema({"n": "numeric", "c": "categorical"})
    columns, errors = prepare_columns(schema, [{"n": 1.0, "c": 1e30}], reread=lambda i: {"n": 1.0, "c": 10**30})
    assert errors == [] and columns.rows() == [{"n": 1.0, "c": str(10**30)}]


def test_the_numeric_matrix_keeps_missing_values_missing():
    schema = FeatureSchema({"x": "numeric", "y": "numeric"})
    columns, _ = prepare_columns(schema, [{"x": 1, "y": 2.5}, {"x": 3}])
    assert columns.rows() == [{"x": 1.0, "y": 2.5}, {"x": 3.0}] and math.isnan(columns.numeric["y"][1])
