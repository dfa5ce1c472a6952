"""Feature schema and the one feature-preparation function shared by the offline trainer and the stream.

A feature is ``numeric`` (ints, floats and bools become floats) or ``categorical`` (strings; a number in a
categorical feature becomes its :func:`category_text`, the one encoding of training and the stream, so ``12``,
``12.0`` and ``"12"`` are one category). Missing values (absent or ``null``) follow
:class:`MissingFeaturePolicy`; features not in the schema follow :class:`UnknownFeaturePolicy`.

A schema inferred from example rows (:func:`infer_schema`) takes for each feature the kind most rows agree on:
one ``"lots"`` among a thousand salaries does not make ``salary`` categorical; the rows that conflict with the
chosen kind are counted, and the stream dead-letters them (``prepare`` rejects them).

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
>>> inferred = infer_schema([{"salary": 1200.0}, {"salary": "lots"}, {"salary": 900}])
>>> inferred.schema.kinds, inferred.conflicts
({'salary': 'numeric'}, {'salary': 1})
>>> print(inferred.describe())
3 rows: salary numeric (2 numbers, 1 text: conflicting rows are rejected)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
        """Infer kinds from example rows, the kind most rows agree on (see :func:`infer_schema`)."""
        return infer_schema(rows).schema


@dataclass(frozen=True)
class SchemaInference:
    """A schema inferred from example rows, with what each feature's values were and how many conflict."""

    schema: FeatureSchema
    rows: int
    #: feature -> (numbers, texts) among its present values
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: feature -> rows whose value the chosen kind rejects (text in a numeric feature); only features with some
    conflicts: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line: the rows read and each feature's kind, with the conflicts and what happens to them."""
        parts = []
        for name, kind in self.schema.kinds.items():
            numbers, texts = self.seen.get(name, (0, 0))
            if name in self.conflicts:
                parts.append(f"{name} {kind} ({numbers} numbers, {texts} text: conflicting rows are rejected)")
            elif numbers and texts:
                parts.append(f"{name} {kind} ({numbers} numbers read as categories, {texts} text)")
            else:
                parts.append(f"{name} {kind}")
        return f"{self.rows} rows: " + ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """What to store beside a model version: the kinds, the rows read, the conflicts."""
        return {"kinds": self.schema.to_dict(), "rows": self.rows, "conflicts": dict(self.conflicts)}


def infer_schema(rows: Iterable[Mapping[str, Any]]) -> SchemaInference:
    """Each feature takes the kind most of its present values agree on: numeric when numbers (and bools)
    outnumber texts, else categorical (a tie is categorical, which rejects no row). Text in a numeric feature
    conflicts (``prepare`` rejects it); a number in a categorical feature is a category (:func:`category_text`).
    A feature only ever missing is numeric.

    >>> infer_schema([{"zip": "75001"}, {"zip": 75002}, {"zip": "75003"}]).schema.kinds
    {'zip': 'categorical'}
    """
    numbers: Counter[str] = Counter()
    texts: Counter[str] = Counter()
    names: dict[str, None] = {}
    count = 0
    for row in rows:
        count += 1
        for name, value in row.items():
            names.setdefault(name)
            if isinstance(value, str):
                texts[name] += 1
            elif isinstance(value, bool | int | float):
                numbers[name] += 1
    kinds: dict[str, FeatureKind] = {
        name: "categorical" if texts[name] and texts[name] >= numbers[name] else "numeric" for name in names
    }
    conflicts = {name: texts[name] for name, kind in kinds.items() if kind == "numeric" and texts[name]}
    seen = {name: (numbers[name], texts[name]) for name in names}
    return SchemaInference(FeatureSchema(kinds), count, seen, conflicts)


def category_text(value: Any) -> str:
    """The one text of a category value, shared by training and the stream: an integral number is written
    without a fraction, whatever its type (a float-coded ``12.0`` is the ``"12"`` a CSV column of ints gives).

    >>> category_text(12.0), category_text(12), category_text("12"), category_text(12.5), category_text(True)
    ('12', '12', '12', '12.5', 'True')
    """
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _coerce(name: str, kind: FeatureKind, value: Any) -> float | str:
    if kind == "categorical":
        if isinstance(value, str | int | bool) or (isinstance(value, float) and math.isfinite(value)):
            return category_text(value)
        raise FeatureError(f"feature '{name}' expects a category, got {type(value).__name__}")
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise FeatureError(f"feature '{name}' is not finite")
        return number
    raise FeatureError(f"feature '{name}' expects a number, got {type(value).__name__}")
