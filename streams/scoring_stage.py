"""Turn a batch of raw ``events`` records into predictions and dead letters (pure: no I/O), per column.

The batch is decoded once (:func:`~driftline.contract.event_batch.decode_events`: one orjson decode a message),
its features gathered and checked per column (:func:`~driftline.models.feature_columns.prepare_columns`) and
scored per column: River linear pipelines with their own weights and scaler
(:mod:`driftline.models.linear_columns`, equal to ``predict_proba_one`` on every row), other models through their
batch scorer. The prediction records are built in one pass. Every record is accepted or dead-lettered with the
same stage, error class and reason as one at a time (tests/streams/test_scoring_stage.py checks it).

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

import numpy as np
import orjson

from driftline.contract.event_batch import EventColumns, decode_events
from driftline.contract.records import RecordError, parse_event, ts_window
from driftline.contract.settings import Settings
from driftline.models.champion import Challenger, RiverChallenger, as_challenger
from driftline.models.explain import Explanation, explain_rows
from driftline.models.feature_columns import FeatureColumns, prepare_columns
from driftline.models.features import FeatureError, FeatureSchema
from driftline.models.linear_columns import LinearPlan, linear_plan
from driftline.models.scoring import Scored
from driftline.models.version import ModelVersion
from driftline.streams.deadletter import DeadLetter, unexpected_reason
from driftline.streams.dlq import carry_replay_count
from driftline.streams.event_order import decoded_value


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

    @functools.cached_property
    def schema(self) -> FeatureSchema:
        return self.meta.feature_schema()

    @functools.cached_property
    def plan(self) -> LinearPlan | None:
        """The exact per-column evaluation of a River linear pipeline (None: scored through ``scorer``)."""
        scorer = self.scorer
        return linear_plan(scorer.model, self.task) if isinstance(scorer, RiverChallenger) else None

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

    @classmethod
    def from_settings(cls, settings: Settings) -> ScoringPolicy:
        """The policy a worker scores with (batch scoring and the V2 API use the same).

        >>> policy = ScoringPolicy.from_settings(Settings(max_ts_future_seconds=60))
        >>> policy.max_ts_future_ms, policy.max_ts_past_ms, policy.explain_top_k
        (60000, None, 0)
        """
        past = settings.max_ts_past_seconds
        return cls(
            default_model=settings.model_name,
            max_event_bytes=settings.max_event_bytes,
            missing_feature_policy=settings.missing_feature_policy,
            unknown_feature_policy=settings.unknown_feature_policy,
            review_confidence_threshold=settings.review_confidence_threshold,
            max_ts_future_ms=int(settings.max_ts_future_seconds * 1000),
            max_ts_past_ms=None if past is None else int(past * 1000),
            explain_top_k=settings.explain_top_k,
        )


@dataclass
class ModelBatch:
    """The valid events of one model in a batch, as columns: their records, ids, event times, prepared features
    and outputs (prediction, class probabilities, score and confidence of each event, in order)."""

    loaded: LoadedModel
    records: list[RawRecord]
    event_ids: list[str]
    ts: list[int]
    columns: FeatureColumns
    predictions: list[Any] = field(default_factory=list)
    probabilities: list[dict[str, float] | None] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)
    confidences: list[float | None] = field(default_factory=list)
    #: One per event when the policy asks for explanations (None for a model that cannot be explained).
    explanations: list[Explanation | None] | None = None

    def __len__(self) -> int:
        return len(self.event_ids)

    @functools.cached_property
    def rows(self) -> list[dict[str, Any]]:
        """The prepared feature dicts (built on first use: the join records and monitors read them)."""
        return self.columns.rows()

    @property
    def scored(self) -> list[Scored]:
        return self.scored_in(slice(None))

    def scored_in(self, rows: slice) -> list[Scored]:
        """The outputs of the events in ``rows`` (one HTTP request of a coalesced batch builds only its own)."""
        outputs = (self.predictions[rows], self.probabilities[rows], self.scores[rows], self.confidences[rows])
        return [Scored(*output) for output in zip(*outputs, strict=True)]

    def take(self, positions: Sequence[int]) -> ModelBatch:
        """The events at ``positions`` (outputs not copied)."""
        return ModelBatch(
            self.loaded,
            [self.records[i] for i in positions],
            [self.event_ids[i] for i in positions],
            [self.ts[i] for i in positions],
            self.columns.take(positions),
        )


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


def rejected(record: RawRecord, exc: Exception) -> DeadLetter:
    """The dead letter of a record refused by a check (its stage and reason), or of an unanticipated failure."""
    if isinstance(exc, RecordError):
        return dead_letter(record, exc.stage, exc.error_class, exc.reason)
    if isinstance(exc, FeatureError):
        return dead_letter(record, "validate", "FeatureError", str(exc))
    return unexpected(record, exc)


def model_names(
    records: Sequence[RawRecord], policy: ScoringPolicy, now_ms: int | None = None
) -> tuple[set[str], EventColumns]:
    """Decode the batch once (:func:`decode_events`); return the model names asked for and the decoded columns.
    ``now_ms`` (default: now) centres the accepted ts window."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    bounds = ts_window(now, policy.max_ts_future_ms, policy.max_ts_past_ms)
    values = [decoded_value(record) for record in records]  # decoded by the merge by event time, if it ran
    decoded = decode_events([record.value for record in records], policy.max_event_bytes, bounds, values)
    names = set(decoded.models)
    if None in names:
        names.discard(None)
        names.add(policy.default_model)
    return names, decoded  # type: ignore[return-value]


def score_records(
    records: Sequence[RawRecord],
    decoded: EventColumns,
    models: Callable[[str], LoadedModel | None],
    policy: ScoringPolicy,
    now_ms: Callable[[], float] = lambda: time.time() * 1000,
    thresholds: Mapping[str, float] | None = None,
) -> ScoredBatch:
    """Validate, route to a model, prepare and score per column; returns everything to publish."""
    out = ScoredBatch()
    for row, error in decoded.errors:
        out.dead_letters.append(rejected(records[row], error))
    default = policy.default_model
    names = [model or default for model in decoded.models]
    by_name: dict[str, list[int]] = {}
    if len(set(names)) == 1:
        by_name[names[0]] = list(range(len(names)))
    else:
        for i, name in enumerate(names):
            by_name.setdefault(name, []).append(i)
    for name, positions in by_name.items():
        try:
            loaded = models(name)
        except Exception as exc:  # noqa: BLE001 - no model lookup may stop the scorer: its events alone
            out.dead_letters += [unexpected(records[decoded.rows[i]], exc) for i in positions]
            continue
        if loaded is None:
            for i in positions:
                out.dead_letters.append(
                    dead_letter(records[decoded.rows[i]], "validate", "UnknownModel", f"no model named '{name}'")
                )
            continue
        group = _prepare(loaded, records, decoded, positions, policy, out)
        group = _score(group, out)
        if len(group):
            out.by_model[name] = group
    done_ms = now_ms()
    for name, group in list(out.by_model.items()):
        out.by_model[name] = group = _emit(group, policy, done_ms, out, (thresholds or {}).get(name))
        if not len(group):
            del out.by_model[name]
    return out


def _prepare(
    loaded: LoadedModel,
    records: Sequence[RawRecord],
    decoded: EventColumns,
    positions: list[int],
    policy: ScoringPolicy,
    out: ScoredBatch,
) -> ModelBatch:
    """The model's events with their features prepared per column; invalid ones dead-lettered at ``validate``."""
    raws = [records[decoded.rows[i]] for i in positions]

    def reread(j: int) -> Any:  # the contract's own reading of a row with a number orjson may read differently
        return parse_event(raws[j].value, policy.max_event_bytes).features

    columns, errors = prepare_columns(
        loaded.schema,
        [decoded.features[i] for i in positions],
        policy.missing_feature_policy,
        policy.unknown_feature_policy,
        reread,
    )
    for j, error in errors:
        out.dead_letters.append(rejected(raws[j], error))
    kept = columns.kept
    return ModelBatch(
        loaded,
        [raws[j] for j in kept],
        [decoded.event_ids[positions[j]] for j in kept],
        [decoded.ts[positions[j]] for j in kept],
        replace(columns, kept=list(range(len(kept)))),
    )


def _score(group: ModelBatch, out: ScoredBatch) -> ModelBatch:
    """Score the group: River linear pipelines per column (exact), other models through their batch scorer;
    rows the model could not score are dead-lettered at stage ``score``. When the batch call itself raises,
    every row is scored alone: only the rows that raise are dead-lettered (stage ``unexpected``)."""
    plan = group.loaded.plan
    if plan is not None and len(group):
        try:
            _score_linear(group, plan)
            return group
        except Exception:  # noqa: BLE001 - e.g. a weight that is not finite: the generic path decides each row
            pass
    scorer = group.loaded.scorer
    try:
        scored: list[Scored | BaseException] = list(scorer.score_batch(group.rows))
        if len(scored) != len(group):
            raise RuntimeError(f"the model scored {len(scored)} of {len(group)} rows")
    except Exception:  # noqa: BLE001 - isolate the row that fails
        scored = [_score_one(scorer, row) for row in group.rows]
    failed = [i for i, result in enumerate(scored) if isinstance(result, BaseException) or result.error is not None]
    if failed:
        for i in failed:
            result = scored[i]
            if isinstance(result, BaseException):
                out.dead_letters.append(unexpected(group.records[i], result))
                continue
            error_class, _, message = result.error.partition(": ")  # type: ignore[union-attr]
            out.dead_letters.append(dead_letter(group.records[i], "score", error_class, message or result.error))
        bad = set(failed)
        keep = [i for i in range(len(scored)) if i not in bad]
        group, scored = group.take(keep), [scored[i] for i in keep]
    group.predictions = [s.prediction for s in scored]  # type: ignore[union-attr]
    group.probabilities = [s.probabilities for s in scored]  # type: ignore[union-attr]
    group.scores = [s.score for s in scored]  # type: ignore[union-attr]
    group.confidences = [s.confidence for s in scored]  # type: ignore[union-attr]
    return group


def _score_one(scorer: Challenger, row: dict[str, Any]) -> Scored | BaseException:
    try:
        return scorer.score_batch([row])[0]
    except Exception as exc:  # noqa: BLE001 - returned: the caller dead-letters this row alone
        return exc


def _score_linear(group: ModelBatch, plan: LinearPlan) -> None:
    if plan.task == "regression":
        values = plan.raw(group.columns).tolist()
        group.predictions = group.scores = values
        group.probabilities = group.confidences = [None] * len(values)
        return
    positive = plan.positive_probabilities(group.columns)
    negative = 1.0 - positive
    group.predictions = (positive > negative).tolist()
    group.confidences = np.maximum(positive, negative).tolist()
    group.scores = positive.tolist()
    group.probabilities = [{"False": q, "True": p} for q, p in zip(negative.tolist(), group.scores, strict=True)]


def decide(prediction: Any, score: float | None, threshold: float) -> Any:
    """A binary prediction decided by ``score >= threshold`` (set by an ``adjust_threshold`` action).

    Only bool and 0/1 predictions are re-decided; other class types keep the model's own decision.

    >>> decide(False, 0.4, 0.3), decide(1, 0.7, 0.8), decide("yes", 0.1, 0.5)
    (True, 0, 'yes')
    """
    if score is None or not isinstance(prediction, bool | int):
        return prediction
    decided = score >= threshold
    return decided if isinstance(prediction, bool) else int(decided)


def _emit(
    group: ModelBatch, policy: ScoringPolicy, done_ms: float, out: ScoredBatch, threshold: float | None
) -> ModelBatch:
    """Build the prediction records of the group in one pass; returns the group without the events whose record
    could not be built (each dead-lettered as ``unexpected``: join records and monitors see what is published)."""
    loaded = group.loaded
    if threshold is not None and loaded.task == "binary":
        group.predictions = [
            decide(prediction, score, threshold)
            for prediction, score in zip(group.predictions, group.scores, strict=True)
        ]
    if policy.explain_top_k:
        group.explanations = _explanations(group, policy.explain_top_k)
    latencies = np.maximum(0.0, done_ms - np.array([record.timestamp for record in group.records], dtype=np.float64))
    columns = [group.event_ids, group.predictions, group.probabilities, group.scores, group.confidences]
    columns.append(np.round(latencies, 3).tolist())
    if group.explanations is not None:
        columns.append(group.explanations)
    fields = list(zip(*columns, strict=True))
    build = functools.partial(_prediction, loaded.name, loaded.version, int(done_ms))
    try:
        if group.explanations is None:
            values = _predictions(loaded.name, loaded.version, int(done_ms), fields)
        else:
            values = [build(*row) for row in fields]
    except Exception:  # noqa: BLE001 - e.g. a prediction orjson cannot write: find the events, dead-letter them alone
        built = [_try(build, row) for row in fields]
        failed = [i for i, value in enumerate(built) if isinstance(value, BaseException)]
        out.dead_letters += [unexpected(group.records[i], built[i]) for i in failed]  # type: ignore[arg-type]
        keep = [i for i in range(len(built)) if i not in set(failed)]
        kept = group.take(keep)
        kept.predictions, kept.probabilities, kept.scores, kept.confidences = (
            [column[i] for i in keep]
            for column in (group.predictions, group.probabilities, group.scores, group.confidences)
        )
        if group.explanations is not None:
            kept.explanations = [group.explanations[i] for i in keep]
        group, values, latencies = kept, [built[i] for i in keep], latencies[keep]  # type: ignore[misc]
    out.latencies_ms += latencies.tolist()
    keys = [
        record.key if record.key is not None else event_id.encode()
        for record, event_id in zip(group.records, group.event_ids, strict=True)
    ]
    out.predictions += zip(keys, values, strict=True)
    review = policy.review_confidence_threshold
    if review is not None:
        out.reviews += [
            (key, value)
            for key, value, confidence in zip(keys, values, group.confidences, strict=True)
            if confidence is not None and confidence < review
        ]
    return group


#: Between two records of :func:`_predictions`' list: the end of one, the start of the next.
_RECORD_START = b'{"event_id":'
_NEXT_RECORD = b"}," + _RECORD_START


def _prediction(
    model: str,
    version: int,
    ts: int,
    event_id: str,
    prediction: Any,
    probabilities: dict[str, float] | None,
    score: float | None,
    confidence: float | None,
    latency_ms: float,
    *explanation: Explanation | Exception | None,
) -> bytes:
    """One ``predictions`` record (with its explanation when one is given; an exception in its place is raised)."""
    record = {
        "event_id": event_id,
        "model": model,
        "model_version": version,
        "prediction": prediction,
        "probabilities": probabilities,
        "score": score,
        "confidence": confidence,
        "latency_ms": latency_ms,
        "ts": ts,
    }
    if explanation:
        if isinstance(explanation[0], Exception):
            raise explanation[0]
        record["explanation"] = explanation[0]
    return orjson.dumps(record)


def _predictions(model: str, version: int, ts: int, fields: Sequence[tuple]) -> list[bytes]:
    """:func:`_prediction` of each row of ``fields`` (no explanations), the same bytes, from one ``orjson.dumps``
    of them all cut apart: a call per row cost ~3x as much (measured: 4.2 against 1.3 us an event).

    Every record starts with its ``event_id`` key, so the list's text is the records joined by
    ``},{"event_id":``, which no value can hold (a quote inside a JSON string is escaped); the cut is checked
    (one piece per record), else each record is written alone.

    >>> fields = [("e1", True, {"False": 0.25, "True": 0.75}, 0.75, 0.75, 1.5), ('},{"event_id":', 0, None, 0, 0, 0)]
    >>> _predictions("m", 2, 9, fields) == [_prediction("m", 2, 9, *row) for row in fields]
    True
    >>> _predictions("m", 2, 9, fields[:1]) == [_prediction("m", 2, 9, *fields[0])], _predictions("m", 2, 9, [])
    (True, [])
    """
    records = [
        {
            "event_id": event_id,
            "model": model,
            "model_version": version,
            "prediction": prediction,
            "probabilities": probabilities,
            "score": score,
            "confidence": confidence,
            "latency_ms": latency_ms,
            "ts": ts,
        }
        for event_id, prediction, probabilities, score, confidence, latency_ms in fields
    ]
    if len(records) < 2:
        return [orjson.dumps(record) for record in records]
    pieces = orjson.dumps(records)[1:-1].split(_NEXT_RECORD)
    if len(pieces) != len(records):  # not expected: written one by one
        return [orjson.dumps(record) for record in records]
    last = pieces.pop()
    return [pieces[0] + b"}", *[_RECORD_START + piece + b"}" for piece in pieces[1:]], _RECORD_START + last]


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


def _try(build: Callable[..., bytes], row: tuple) -> bytes | BaseException:
    try:
        return build(*row)
    except Exception as exc:  # noqa: BLE001 - returned: the caller dead-letters this event alone
        return exc
