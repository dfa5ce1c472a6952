"""Reference profile of the training data: what monitoring and the data-quality gate compare the stream to.

The offline trainer writes one (``reference_profile.json``); without one, monitoring learns a reference from
the first events of the stream with :meth:`ReferenceProfile.from_rows`.

Examples
--------
>>> rows = [{"x": float(i), "c": "ab"[i % 2]} for i in range(100)]
>>> profile = ReferenceProfile.from_rows(rows)
>>> profile.features["x"].minimum, profile.features["x"].maximum
(0.0, 99.0)
>>> profile.features["c"].frequencies
{'a': 0.5, 'b': 0.5}
>>> ReferenceProfile.from_json(profile.to_json()) == profile
True
>>> profile.schema().kinds
{'x': 'numeric', 'c': 'categorical'}
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from driftline.models.features import FeatureSchema, category_text

QUANTILE_LEVELS = tuple(i / 10 for i in range(11))
HISTOGRAM_BINS = 10
SAMPLE_SIZE = 1000


@dataclass(frozen=True)
class NumericProfile:
    """Distribution of one numeric feature in the reference data."""

    count: int
    missing_rate: float
    minimum: float
    maximum: float
    mean: float
    std: float
    quantiles: list[float]
    bin_edges: list[float]
    bin_counts: list[int]
    sample: list[float] = field(repr=False)
    kind: str = "numeric"


@dataclass(frozen=True)
class CategoricalProfile:
    """Category frequencies of one categorical feature in the reference data."""

    count: int
    missing_rate: float
    frequencies: dict[str, float]
    kind: str = "categorical"


FeatureProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-feature profiles, plus optional profiles of the model's scores and of the target."""

    features: dict[str, FeatureProfile]
    prediction: NumericProfile | CategoricalProfile | None = None
    rows: int = 0

    def schema(self) -> FeatureSchema:
        """The feature schema implied by the profile."""
        return FeatureSchema({name: p.kind for name, p in self.features.items()})  # type: ignore[misc]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        raw = json.loads(text)
        prediction = raw.get("prediction")
        return cls(
            features={name: _profile_from_dict(p) for name, p in raw["features"].items()},
            prediction=_profile_from_dict(prediction) if prediction else None,
            rows=raw.get("rows", 0),
        )

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        schema: FeatureSchema | None = None,
        predictions: Iterable[Any] | None = None,
        seed: int = 0,
    ) -> ReferenceProfile:
        """Profile feature dicts (values as in events). ``schema`` defaults to one inferred from rows."""
        rows = list(rows)
        schema = schema or FeatureSchema.infer(rows)
        features = {
            name: profile_values([row.get(name) for row in rows], kind, seed) for name, kind in schema.kinds.items()
        }
        prediction = None
        if predictions is not None:
            values = list(predictions)
            kind = "categorical" if values and isinstance(values[0], str) else "numeric"
            prediction = profile_values(values, kind, seed)
        return cls(features=features, prediction=prediction, rows=len(rows))


def profile_values(values: list[Any], kind: str, seed: int = 0) -> FeatureProfile:
    """Profile one column of raw values (``None`` and NaN count as missing)."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    missing_rate = 1 - len(present) / len(values) if values else 0.0
    if kind == "categorical":
        counts = Counter(category_text(v) for v in present)
        total = sum(counts.values()) or 1
        return CategoricalProfile(len(values), missing_rate, {k: c / total for k, c in sorted(counts.items())})
    data = np.asarray([float(v) for v in present], dtype=float)
    if data.size == 0:
        return NumericProfile(len(values), missing_rate, math.nan, math.nan, math.nan, math.nan, [], [], [], [])
    quantiles = np.quantile(data, QUANTILE_LEVELS).tolist()
    bin_counts, bin_edges = np.histogram(data, bins=HISTOGRAM_BINS)
    rng = random.Random(seed)
    sample = data.tolist() if data.size <= SAMPLE_SIZE else rng.sample(data.tolist(), SAMPLE_SIZE)
    return NumericProfile(
        count=len(values),
        missing_rate=missing_rate,
        minimum=float(data.min()),
        maximum=float(data.max()),
        mean=float(data.mean()),
        std=float(data.std()),
        quantiles=quantiles,
        bin_edges=bin_edges.tolist(),
        bin_counts=bin_counts.tolist(),
        sample=sample,
    )


def _profile_from_dict(raw: dict[str, Any]) -> FeatureProfile:
    if raw["kind"] == "categorical":
        return CategoricalProfile(**raw)
    return NumericProfile(**raw)
