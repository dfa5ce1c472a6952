"""The scoring stage alone, no Kafka, Redis or monitors: raw messages in, prediction records out.

What the worker does to each batch of :data:`BATCH` raw ``events`` messages (``model_names`` + ``score_records``:
decode, validate, prepare, score, build the prediction records), timed in-process over the same Agrawal events
and bootstrap model as `driftline bench peers`, beside River's own ``predict_proba_one`` loop on the decoded
events as a reference. Median of :data:`RUNS` runs. With ``explain=K`` the stage also runs with
``explain_top_k=K`` (every prediction carries its top K contributions), interleaved run by run with the plain
stage, and the difference per event is the explanations' cost; the explanations alone are timed beside it
(``explain_rows`` on prepared events, less noisy on a shared machine).

>>> figures = run(events=600)
>>> figures["stage_eps"] > 0 and figures["river_predict_proba_one_eps"] > 0
True
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import orjson

from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.explain import explain_rows
from driftline.models.version import ModelVersion
from driftline.streams.scoring_stage import LoadedModel, ScoringPolicy, model_names, score_records

BATCH = 500
RUNS = 5


@dataclass(frozen=True, slots=True)
class Message:
    """A Kafka record as the stage reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: tuple = ()


def loaded_bootstrap() -> LoadedModel:
    """The bootstrap model as the worker holds it (version 1 of ``default``)."""
    model, schema, task = bootstrap_model()
    meta = ModelVersion("default", 1, None, 0, "", "", task, schema.to_dict())
    return LoadedModel(meta, model)


def messages(events: int) -> list[Message]:
    """``events`` Agrawal events as raw messages of a 4-partition topic."""
    out = []
    for i, (event, _) in enumerate(synthetic_stream(events, drift_at=events)):
        out.append(Message("events", i % 4, i // 4, event["event_id"].encode(), orjson.dumps(event), event["ts"]))
    return out


def stage_eps(loaded: LoadedModel, records: list[Message], policy: ScoringPolicy) -> float:
    """Events/s through the stage, batch after batch."""
    started = time.perf_counter()
    for i in range(0, len(records), BATCH):
        batch = records[i : i + BATCH]
        _, parsed = model_names(batch, policy)
        score_records(batch, parsed, lambda name: loaded if name == "default" else None, policy)
    return len(records) / (time.perf_counter() - started)


def river_eps(loaded: LoadedModel, records: list[Message]) -> float:
    """River alone: ``predict_proba_one`` on each already decoded and prepared event."""
    rows = [loaded.schema.prepare(orjson.loads(r.value)["features"]) for r in records]
    model = loaded.model
    started = time.perf_counter()
    for row in rows:
        model.predict_proba_one(row)
    return len(rows) / (time.perf_counter() - started)


def explain_us(loaded: LoadedModel, records: list[Message], top_k: int) -> float:
    """Microseconds per event of the explanations alone, on decoded and prepared events, batch after batch."""
    rows = [loaded.schema.prepare(orjson.loads(r.value)["features"]) for r in records]
    started = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        explain_rows(loaded.model, loaded.task, rows[i : i + BATCH], top_k)
    return (time.perf_counter() - started) * 1e6 / len(rows)


def run(events: int = 30_000, explain: int = 0) -> dict[str, Any]:
    loaded = loaded_bootstrap()
    records = messages(events)
    policy = ScoringPolicy(default_model="default")
    explained = ScoringPolicy(default_model="default", explain_top_k=explain)
    stage_eps(loaded, records[:BATCH], policy)  # warm-up
    plain_runs, explained_runs = [], []
    for _ in range(RUNS):
        plain_runs.append(stage_eps(loaded, records, policy))
        if explain:
            explained_runs.append(stage_eps(loaded, records, explained))
    stage = statistics.median(plain_runs)
    river = statistics.median(river_eps(loaded, records) for _ in range(RUNS))
    figures: dict[str, Any] = {
        "events": events,
        "batch": BATCH,
        "stage_eps": round(stage, 1),
        "stage_us_per_event": round(1e6 / stage, 2),
        "river_predict_proba_one_eps": round(river, 1),
    }
    if explain:
        with_explanations = statistics.median(explained_runs)
        figures |= {
            "explain_top_k": explain,
            "stage_explained_eps": round(with_explanations, 1),
            "stage_explained_us_per_event": round(1e6 / with_explanations, 2),
            "explanation_us_per_event": round(1e6 / with_explanations - 1e6 / stage, 2),
            "explain_rows_alone_us_per_event": round(
                statistics.median(explain_us(loaded, records, explain) for _ in range(RUNS)), 2
            ),
        }
    return figures
