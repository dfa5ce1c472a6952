"""Turn a batch of raw ``events`` records into predictions and dead letters (pure: no I/O).

Every record ends up in exactly one of ``ScoredBatch.predictions`` or ``ScoredBatch.dead_letters``, whatever
it holds: an exception no check anticipated dead-letters that record alone (stage ``unexpected``), and a batch
call that fails is repeated row by row, so one bad record never takes its batch with it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from driftline.contract.records import Event, RecordError, parse_event, ts_window
from driftline.models.champion import Challenger, as_challenger
from driftline.models.explain import Explanation, explain_rows
from driftline.models.features import FeatureError, FeatureSchema
from driftline.models.scoring import Scored
from driftline.models.version import ModelVersion
from driftline.streams.deadletter import DeadLetter, unexpected_reason
from driftline.streams.dlq import carry_replay_count


class RawRecord(Protocol):
    """What the stage reads of a Kafka record (aiokafka's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


@dataclass(frozen=True)
class LoadedModel:
    """One model version in memory, with what scoring needs to know about it."""

    meta: ModelVersion
    model: Any

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> int:
        return self.meta.version

    @property
    def task(self) -> str:
        return self.meta.task

    @property
    def schema(self) -> FeatureSchema:
        return self.meta.feature_schema()

    @functools.cached_property
    def scorer(self) -> Challenger:
        """What scores batches: a River model, or an offline scikit-learn model promoted from challenger."""
        return as_challenger(self.model, self.task, self.meta.data_summary.get("positive_class"))


@dataclass(frozen=True)
class ScoringPolicy:
    """How the stage treats input (a subset of the settings)."""

    default_model: str
    max_event_bytes: int = 65_536
    missing_feature_policy: str = "impute"
    unknown_feature_policy: str = "ignore"
    review_confidence_threshold: float | None = None
    #: Events whose ts is further ahead of / behind the scorer's clock are dead-lettered (None: no limit).
    max_ts_future_ms: int | None = None
    max_ts_past_ms: int | None = None
    #: Add the top K feature contributions to each prediction (0: off).
    explain_top_k: int = 0


@dataclass
class ModelBatch:
    """The valid events of one model in a batch, with their prepared features and scores."""

    loaded: LoadedModel
    records: list[RawRecord] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    scored: list[Scored] = field(default_factory=list)
    #: One per event when the policy asks for explanations (None for a model that cannot be explained).
    explanations: list[Explanation | None] | None = None


@dataclass
class ScoredBatch:
    """What to publish for one batch: predictions, review requests and dead letters."""

    predictions: list[tuple[bytes, bytes]] = field(default_factory=list)
    reviews: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    by_model: dict[str, ModelBatch] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)


def dead_letter(record: RawRecord, stage: str, error_class: str, message: str) -> DeadLetter:
    """The dead letter of ``record``: original key and value, where it came from and why it was rejected."""
    carried = tuple(carry_replay_count(getattr(record, "headers", None)))
    return DeadLetter(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        stage,
        error_class,
        message,
        carried,  # type: ignore[arg-type]
    )


def unexpected(record: RawRecord, exc: BaseException) -> DeadLetter:
    """The dead letter of a record whose handling raised what no check anticipated: stage ``unexpected``, the
    error class, and the last line of the traceback as the reason.

    >>> from types import SimpleNamespace
    >>> record = SimpleNamespace(topic="events", partition=0, offset=7, key=None, value=b"{}", timestamp=0)
    >>> letter = unexpected(record, OverflowError("int too large"))
    >>> letter.stage, letter.error_class, letter.message
    ('unexpected', 'OverflowError', 'OverflowError: int too large')
    """
    return dead_letter(record, "unexpected", *unexpected_reason(exc))


def model_names(
    records: Sequence[RawRecord], policy: ScoringPolicy, now_ms: int | None = None
) -> tuple[set[str], list[Event | RecordError | DeadLetter]]:
    """Parse every record once; return the model names asked for and the parse results in order (an event, the
    validation error, or the dead letter of an unexpected failure). ``now_ms`` (default: now) centres the
    accepted ts window."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    bounds = ts_window(now, policy.max_ts_future_ms, policy.max_ts_past_ms)
    parsed: list[Event | RecordError | DeadLetter] = []
    names: set[str] = set()
    for record in records:
        try:
            event = parse_event(record.value, policy.max_event_bytes, bounds)
        except RecordError as exc:
            parsed.append(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - no message may stop the scorer
            parsed.append(unexpected(record, exc))
            continue
        parsed.append(event)
        names.add(event.model or policy.default_model)
    return names, parsed


def score_records(
    records: Sequence[RawRecord],
    parsed: Sequence[Event | RecordError | DeadLetter],
    models: Callable[[str], LoadedModel | None],
    policy: ScoringPolicy,
    now_ms: Callable[[], float] = lambda: time.time() * 1000,
    thresholds: Mapping[str, float] | None = None,
) -> ScoredBatch:
    """Validate, route to a model, prepare, score; returns everything to publish."""
    out = ScoredBatch()
    groups: dict[str, ModelBatch] = {}
    for record, event in zip(records, parsed, strict=True):
        if isinstance(event, DeadLetter):
            out.dead_letters.append(event)
            continue
        if isinstance(event, RecordError):
            out.dead_letters.append(dead_letter(record, event.stage, event.error_class, event.reason))
            continue
        name = event.model or policy.default_model
        try:
            loaded = models(name)
            if loaded is None:
                out.dead_letters.append(dead_letter(record, "validate", "UnknownModel", f"no model named '{name}'"))
                continue
            row = loaded.schema.prepare(
                event.features,
                policy.missing_feature_policy,
                policy.unknown_feature_policy,  # type: ignore[arg-type]
            )
        except FeatureError as exc:
            out.dead_letters.append(dead_letter(record, "validate", "FeatureError", str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - no message may stop the scorer
            out.dead_letters.append(unexpected(record, exc))
            continue
        group = groups.get(name)
        if group is None:  # not setdefault: it would build a ModelBatch per event (measured 3% of the scorer)
            group = groups[name] = ModelBatch(loaded)
        group.records.append(record)
        group.events.append(event)
        group.rows.append(row)
    for name, group in groups.items():
        _score_group(group, out)
        if group.events:
            out.by_model[name] = group
    done_ms = now_ms()
    for name, group in list(out.by_model.items()):
        _emit(group, policy, done_ms, out, (thresholds or {}).get(name))
        if not group.events:
            del out.by_model[name]
    return out


def _score_group(group: ModelBatch, out: ScoredBatch) -> None:
    """Score the group in one batch; rows the model could not score are dead-lettered at stage ``score``.

    When the batch call itself raises, every row is scored alone: only the rows that raise are dead-lettered
    (stage ``unexpected``)."""
    isolated = False
    try:
        scored: list[Scored | BaseException] = list(group.loaded.scorer.score_batch(group.rows))
        if len(scored) != len(group.rows):
            raise RuntimeError(f"the model scored {len(scored)} of {len(group.rows)} rows")
    except Exception:  # noqa: BLE001 - isolate the row that fails
        isolated = True
        scored = [_score_one(group.loaded.scorer, row) for row in group.rows]
    if not isolated and all(result.error is None for result in scored):  # type: ignore[union-attr]
        group.scored = scored  # type: ignore[assignment]
        return
    kept = ModelBatch(group.loaded)
    for record, event, row, result in zip(group.records, group.events, group.rows, scored, strict=True):
        if isinstance(result, BaseException):
            out.dead_letters.append(unexpected(record, result))
            continue
        if result.error is not None:
            error_class, _, message = result.error.partition(": ")
            out.dead_letters.append(dead_letter(record, "score", error_class, message or result.error))
            continue
        kept.records.append(record)
        kept.events.append(event)
        kept.rows.append(row)
        kept.scored.append(result)
    group.records, group.events, group.rows, group.scored = kept.records, kept.events, kept.rows, kept.scored


def _score_one(scorer: Challenger, row: dict[str, Any]) -> Scored | BaseException:
    try:
        return scorer.score_batch([row])[0]
    except Exception as exc:  # noqa: BLE001 - returned: the caller dead-letters this row alone
        return exc


def apply_threshold(scored: Scored, threshold: float | None) -> Scored:
    """A binary prediction decided by ``score >= threshold`` (set by an ``adjust_threshold`` action).

    Only bool and 0/1 predictions are re-decided; other class types keep the model's own decision.

    >>> apply_threshold(Scored(False, {"False": 0.6, "True": 0.4}, 0.4, 0.6), 0.3).prediction
    True
    >>> apply_threshold(Scored(1, {"0": 0.3, "1": 0.7}, 0.7, 0.7), 0.8).prediction
    0
    """
    if threshold is None or scored.score is None or not isinstance(scored.prediction, bool | int):
        return scored
    decided = scored.score >= threshold
    return replace(scored, prediction=decided if isinstance(scored.prediction, bool) else int(decided))


def _emit(group: ModelBatch, policy: ScoringPolicy, done_ms: float, out: ScoredBatch, threshold: float | None) -> None:
    loaded = group.loaded
    if threshold is not None and loaded.task == "binary":
        group.scored = [apply_threshold(s, threshold) for s in group.scored]
    review_below = policy.review_confidence_threshold
    failed: list[int] = []
    if policy.explain_top_k:
        group.explanations = _explanations(group, policy.explain_top_k)
    for i, (record, event, scored) in enumerate(zip(group.records, group.events, group.scored, strict=True)):
        latency = max(0.0, done_ms - record.timestamp)
        try:
            payload = {
                "event_id": event.event_id,
                "model": loaded.name,
                "model_version": loaded.version,
                "prediction": scored.prediction,
                "probabilities": scored.probabilities,
                "score": scored.score,
                "confidence": scored.confidence,
                "latency_ms": round(latency, 3),
                "ts": int(done_ms),
            }
            if group.explanations is not None:
                explanation = group.explanations[i]
                if isinstance(explanation, Exception):
                    raise explanation
                payload["explanation"] = explanation
            value = orjson.dumps(payload)
            key = record.key if record.key is not None else event.event_id.encode()
        except Exception as exc:  # noqa: BLE001 - e.g. a prediction orjson cannot write: this event alone
            out.dead_letters.append(unexpected(record, exc))
            failed.append(i)
            continue
        out.latencies_ms.append(latency)
        out.predictions.append((key, value))
        if review_below is not None and scored.confidence is not None and scored.confidence < review_below:
            out.reviews.append((key, value))
    if failed:  # the join records and monitors see only what was published
        _drop(group, set(failed))


def _explanations(group: ModelBatch, top_k: int) -> list[Any]:
    """The batch's explanations; when the batch fails, each row's, its exception in place of a failing one's."""
    loaded = group.loaded
    try:
        return list(explain_rows(loaded.model, loaded.task, group.rows, top_k))
    except Exception:  # noqa: BLE001 - find the rows to dead-letter
        found: list[Any] = []
        for row in group.rows:
            try:
                found += explain_rows(loaded.model, loaded.task, [row], top_k)
            except Exception as exc:  # noqa: BLE001 - this event alone is dead-lettered
                found.append(exc)
        return found


def _drop(group: ModelBatch, indices: set[int]) -> None:
    keep = [i for i in range(len(group.events)) if i not in indices]
    group.records = [group.records[i] for i in keep]
    group.events = [group.events[i] for i in keep]
    group.rows = [group.rows[i] for i in keep]
    group.scored = [group.scored[i] for i in keep]
    if group.explanations is not None:
        group.explanations = [group.explanations[i] for i in keep]
