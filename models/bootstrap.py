"""The model the stream starts with before the offline module registered one: a River pipeline trained on a
synthetic dataset that River ships (Agrawal), and the synthetic event stream the demo publishes.

Examples
--------
>>> model, schema, task = bootstrap_model(samples=500)
>>> task, sorted(schema.kinds)[:3]
('binary', ['age', 'car', 'commission'])
>>> events = list(synthetic_stream(4, drift_at=2))
>>> [e["event_id"] for e, _ in events]
['ev-00000000', 'ev-00000001', 'ev-00000002', 'ev-00000003']
>>> events[3][0]["features"]["salary"] > 0
True
>>> [e["ts"] for e, _ in synthetic_stream(2, start_ms=1_000)]
[1000, 1001]
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

from river.datasets import synth

from driftline.models.features import FeatureSchema
from driftline.models.specs import Task, build_model

#: After the drift point the concept changes (Agrawal function 0 -> 2) and salary shifts (covariate drift).
CONCEPT_BEFORE, CONCEPT_AFTER, SALARY_SHIFT = 0, 2, 1.6


def bootstrap_model(samples: int = 2000, seed: int = 42) -> tuple[Any, FeatureSchema, Task]:
    """A binary River pipeline trained on ``samples`` rows of River's Agrawal generator."""
    data = list(itertools.islice(synth.Agrawal(classification_function=CONCEPT_BEFORE, seed=seed), samples))
    schema = FeatureSchema.infer(x for x, _ in data)
    model = build_model(schema, "binary")
    for x, y in data:
        model.learn_one(schema.prepare(x), bool(y))
    return model, schema, "binary"


def synthetic_stream(
    n: int, drift_at: int | None = None, seed: int = 7, start_ms: int | None = None
) -> Iterator[tuple[dict, bool]]:
    """``n`` events (the topic contract) with their labels; concept and covariate drift at ``drift_at``; event
    ``i`` happened at ``start_ms + i`` (epoch milliseconds; default: now)."""
    drift_at = n // 2 if drift_at is None else drift_at
    before = synth.Agrawal(classification_function=CONCEPT_BEFORE, seed=seed)
    after = synth.Agrawal(classification_function=CONCEPT_AFTER, seed=seed + 1)
    start_ms = int(time.time() * 1000) if start_ms is None else start_ms
    for i, (x, y) in enumerate(itertools.chain(itertools.islice(before, drift_at), after)):
        if i >= n:
            return
        features = {k: float(v) for k, v in x.items()}
        if i >= drift_at:
            features["salary"] *= SALARY_SHIFT
        yield {"event_id": f"ev-{i:08d}", "ts": start_ms + i, "features": features}, bool(y)
