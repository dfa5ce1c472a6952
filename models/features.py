"""Feature schema and the one feature-preparation function shared by the offline trainer and the stream.

A feature is ``numeric`` (ints, floats and bools become floats) or ``categorical`` (kept as strings).
Missing values (absent or ``null``) follow :class:`MissingFeaturePolicy`; features not in the schema follow
:class:`UnknownFeaturePolicy`.

Examples
--------
>>> schema = FeatureSchema({"amount": "numeric", "country": "categorical"})
>>> schema.prepare({"amount": 3, "country": "FR", "extra": 1})
{'amount': 3.0, 'country': 'FR'}
>>> schema.prepare({"amount": None, "country": 7})
{'country': '7'}
>>> schema.prepare({"amount": "ten"})
Traceback (most recent call last):
...
driftline.models.features.FeatureError: feature 'amount' expects a number, got str
>>> FeatureSchema.infer([{"a": 1.5, "b": "x"}, {"a": None, "b": "y", "c": True}]).kinds
{'a': 'numeric', 'b': 'categorical', 'c': 'numeric'}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

FeatureKind = Literal["numeric", "categorical"]
FeatureValue = float | int | str | bool | None


class FeatureError(ValueError):
    """An event's features do not fit the schema (the reason is the message)."""


@dataclass(frozen=True)
class FeatureSchema:
    """Names and kinds of the features a model expects."""

    kinds: dict[str, FeatureKind]

    def __init__(self, kinds: Mapping[str, FeatureKind]):
        bad = {k: v for k, v in kinds.items() if v not in ("numeric", "categorical")}
        if bad:
            raise ValueError(f"unknown feature kinds: {bad}")
        object.__setattr__(self, "kinds", dict(kinds))

    @property
    def numeric(self) -> list[str]:
        return [n for n, k in self.kinds.items() if k == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [n for n, k in self.kinds.items() if k == "categorical"]

    def prepare(
        self,
        features: Mapping[str, Any],
        missing: Literal["impute", "reject"] = "impute",
        unknown: Literal["ignore", "reject"] = "ignore",
    ) -> dict[str, float | str]:
        """Coerce raw event features to model input; raise :class:`FeatureError` with the reason."""
        if unknown == "reject":
            extra = [name for name in features if name not in self.kinds]
            if extra:
                raise FeatureError(f"unknown feature(s) {sorted(extra)[:5]}")
        prepared: dict[str, float | str] = {}
        for name, kind in self.kinds.items():
            value = features.get(name)
            if value is None:
                if missing == "reject":
                    raise FeatureError(f"missing feature '{name}'")
                continue
            prepared[name] = _coerce(name, kind, value)
        return prepared

    def to_dict(self) -> dict[str, FeatureKind]:
        return dict(self.kinds)

    @classmethod
    def infer(cls, rows: Iterable[Mapping[str, Any]]) -> FeatureSchema:
        """Infer kinds from example rows: a feature ever seen as a string is categorical."""
        kinds: dict[str, FeatureKind] = {}
        for row in rows:
            for name, value in row.items():
                if value is None:
                    kinds.setdefault(name, "numeric")
                elif isinstance(value, str):
                    kinds[name] = "categorical"
                elif isinstance(value, bool | int | float):
                    kinds.setdefault(name, "numeric")
        return cls(kinds)


def _coerce(name: str, kind: FeatureKind, value: Any) -> float | str:
    if kind == "categorical":
        if isinstance(value, str | int | bool) or (isinstance(value, float) and math.isfinite(value)):
            return str(value)
        raise FeatureError(f"feature '{name}' expects a category, got {type(value).__name__}")
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise FeatureError(f"feature '{name}' is not finite")
        return number
    raise FeatureError(f"feature '{name}' expects a number, got {type(value).__name__}")
