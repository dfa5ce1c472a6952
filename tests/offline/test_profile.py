"""Profiles: facts for framing, and the reference profile monitoring consumes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from driftline.models.features import FeatureSchema
from driftline.models.reference import ReferenceProfile
from driftline.offline.prepare import to_events
from driftline.offline.profile import profile_frame, reference_profile


def test_reference_profile_equals_from_rows_on_the_prepared_events() -> None:
    """Built column-wise, the profile equals ReferenceProfile.from_rows on the stream-prepared events,
    including missing values, bools, integer-coded categories and a prediction profile."""
    rng = np.random.default_rng(0)
    n = 1500
    X = pd.DataFrame(
        {
            "amount": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "vip": rng.random(n) < 0.3,
            "zip": rng.choice([75001, 10115, 94110], size=n),
            "country": pd.Series(rng.choice(["FR", "DE", "US"], size=n)).mask(rng.random(n) < 0.05),
        }
    )
    schema = FeatureSchema({"amount": "numeric", "vip": "numeric", "zip": "categorical", "country": "categorical"})
    predictions = rng.random(n).tolist()
    expected = ReferenceProfile.from_rows([schema.prepare(e) for e in to_events(X, schema)], schema, predictions)
    got = reference_profile(X, schema, predictions)
    assert got == expected
    assert ReferenceProfile.from_json(got.to_json()) == got
    assert got.features["zip"].frequencies.keys() == {"75001", "10115", "94110"}
    assert 0.05 < got.features["amount"].missing_rate < 0.15


def test_profile_frame_reports_types_missing_duplicates_and_class_balance() -> None:
    """Rows, per-column kind and missing count, duplicate rows and the class counts of the target."""
    df = pd.DataFrame(
        {"x": [1.0, None, 2.0, 2.0], "t": ["a", "b", "c", "c"], "empty": [None] * 4, "y": ["no", "yes", "no", "no"]}
    )
    facts = profile_frame(df, "y")
    kinds = {c.name: (c.kind, c.missing) for c in facts.columns}
    assert kinds == {"x": ("numeric", 1), "t": ("categorical", 0), "empty": ("empty", 4), "y": ("categorical", 0)}
    assert facts.duplicates == 1
    assert facts.class_balance == {"no": 3, "yes": 1}
    assert facts.task == "binary"


def test_profile_frame_summarises_a_regression_target() -> None:
    """A continuous target gets a numeric summary instead of class counts."""
    df = pd.DataFrame({"x": range(30), "y": np.linspace(0.5, 99.5, 30)})
    facts = profile_frame(df, "y")
    assert facts.class_balance is None
    assert facts.target_summary["max"] == 99.5
