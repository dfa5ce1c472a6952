"""Join a batch of labels to their events and learn them (pure: the caller does the I/O).

Every label record ends up learned or dead-lettered with a reason, exactly once:

* ``validate`` / ``LabelError``: the label does not fit the model's task;
* ``join`` / ``UnknownEvent``: no scored event with that id (never seen, or long expired);
* ``join`` / ``LateLabel``: the event is known but the label came after the label TTL;
* ``join`` / ``DuplicateLabel``: that event's label was already learned (its join record may be gone: deleted once
  learned);
* ``unexpected`` / the error class: learning it raised what no check anticipated (the traceback's last line).

>>> from driftline.models.features import FeatureSchema
>>> from driftline.models.learner import OnlineLearner
>>> from driftline.models.specs import build_model
>>> from driftline.contract.records import Label
>>> learner = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary")
>>> join = JoinRecord({"x": 1.0}, True, {"True": 0.7, "False": 0.3}, 0.7, 1, expires_ms=10_000)
>>> label, ghost = Label(event_id="e1", label=True, ts=5_000), Label(event_id="e2", label=True, ts=5_000)
>>> outcome = learn_batch(learner, [(label, join), (label, join), (ghost, None)])
>>> outcome.learned, [reason for _, _, reason in outcome.rejected]
(1, ['DuplicateLabel', 'UnknownEvent'])
>>> learn_batch(learner, [(label, None)]).rejected  # its record deleted once learned
[(0, 'join', 'DuplicateLabel')]
"""

from __future__ import annotations

import collections
import itertools
import operator
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftline.contract.records import Label
from driftline.models.feature_rows import FeatureRows, FloatBlock, LabelledBatch
from driftline.models.learner import OnlineLearner
from driftline.streams.deadletter import unexpected_reason

_NEW, _DRAIN = object.__new__, collections.deque(maxlen=0).extend
_X, _PREDICTION, _PROBABILITIES, _EXPIRES, _BLOCK, _ROW = (
    operator.attrgetter(name) for name in ("x", "prediction", "probabilities", "expires_ms", "block", "row")
)


@dataclass(frozen=True)
class JoinRecord:
    """One scored event as the learner needs it (in Redis in binary form: :mod:`driftline.streams.join_codec`).

    A record decoded with its batch (:meth:`of_rows`) builds its ``x`` from its ``block`` when ``x`` is first read.

    >>> from driftline.models.feature_rows import FloatBlock
    >>> import numpy as np
    >>> block = FloatBlock(("x",), np.array([[1.0], [2.0]]))
    >>> join = JoinRecord.of_rows([True, False], [0.5, 0.25], [3, 3], [10, 10], block)[1]
    >>> "x" in vars(join), join.x, "x" in vars(join)
    (False, {'x': 2.0}, True)
    >>> join == JoinRecord({"x": 2.0}, False, {"False": 0.75, "True": 0.25}, 0.25, 3, 10)
    True
    """

    x: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float] | None
    score: float | None
    version: int
    expires_ms: int
    #: The challenger's output in shadow: [version, prediction, probabilities, score], when one is set.
    challenger: list[Any] | None = None
    #: The float matrix ``x`` is row ``row`` of, when its batch was decoded at once (``x`` holds that row's values).
    block: FloatBlock | None = field(default=None, compare=False, repr=False)
    row: int = field(default=0, compare=False, repr=False)

    @classmethod
    def of_rows(
        cls,
        predictions: list[Any],
        scores: list[float],
        versions: list[int],
        expires_ms: list[int],
        block: FloatBlock,
    ) -> list[JoinRecord]:
        """The records of a decoded batch: one a row of ``block``, in order (no challenger), with the binary
        probabilities of its float score (``{"False": 1 - score, "True": score}``, what the scorer serves), each
        ``x`` built when first read (the learner's usual batch reads the block's matrix, never ``x``); their
        fields' dicts built by one comprehension, set without the frozen dataclass's ``object.__setattr__`` a field.

        >>> from driftline.models.feature_rows import FloatBlock
        >>> import numpy as np
        >>> block = FloatBlock(("x",), np.array([[1.0], [2.0]]))
        >>> JoinRecord.of_rows([True, False], [0.75, 0.25], [3, 3], [10, 11], block) == [
        ...     JoinRecord({"x": 1.0}, True, {"False": 0.25, "True": 0.75}, 0.75, 3, 10),
        ...     JoinRecord({"x": 2.0}, False, {"False": 0.75, "True": 0.25}, 0.25, 3, 11)]
        True
        """
        fields = [
            {
                "prediction": prediction,
                "probabilities": {"False": 1.0 - score, "True": score},
                "score": score,
                "version": version,
                "expires_ms": expiry,
                "challenger": None,
                "block": block,
                "row": row,
            }
            for prediction, score, version, expiry, row in zip(
                predictions, scores, versions, expires_ms, range(len(scores)), strict=True
            )
        ]
        records = list(map(_NEW, itertools.repeat(cls, len(fields))))
        _DRAIN(map(_SET_FIELDS, records, fields))
        return records

    def __getattr__(self, name: str) -> Any:
        """``x`` of a record of :meth:`of_rows`, read for the first time: built from its block's row."""
        fields = self.__dict__
        block = fields.get("block")
        if name != "x" or block is None:
            raise AttributeError(name)
        x = fields["x"] = block.row(fields["row"])
        return x


#: Sets a record's fields (its ``__dict__``) through the slot's descriptor, not ``object.__setattr__`` by name.
_SET_FIELDS = vars(JoinRecord)["__dict__"].__set__


def features_of(joins: Sequence[JoinRecord]) -> Sequence[dict[str, Any]]:
    """The feature dicts of ``joins``: a :class:`~driftline.models.feature_rows.FeatureRows` (their matrix, no
    dict built) when every one is a row of the same decoded block.

    >>> from driftline.models.feature_rows import FloatBlock
    >>> import numpy as np
    >>> block = FloatBlock(("x",), np.array([[1.0], [2.0]]))
    >>> features_of(JoinRecord.of_rows([True, True], [0.5, 0.5], [1, 1], [10, 10], block)[1:]).matrix.tolist()
    [[2.0]]
    >>> type(features_of([JoinRecord({"x": 1.0}, True, None, 0.5, 1, 10)]))
    <class 'list'>
    """
    return FeatureRows.of(list(map(_BLOCK, joins)), list(map(_ROW, joins))) or list(map(_X, joins))


@dataclass
class LearnOutcome:
    """How a batch of joined labels went: learned count and (index, stage, error class) of the rest."""

    learned_indices: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    messages: dict[int, str] = field(default_factory=dict)

    @property
    def learned(self) -> int:
        return len(self.learned_indices)


def target_for(label: Any, positive_class: Any | None) -> Any:
    """Binary models trained offline learn ``label == positive_class``; others learn the label as is.

    >>> target_for("fraud", "fraud"), target_for("ok", "fraud"), target_for(1, None)
    (True, False, 1)
    """
    if positive_class is None:
        return label
    return str(label) == str(positive_class)


def learned_targets(learner: OnlineLearner, labels: Sequence[Any], positive_class: Any | None = None) -> list[Any]:
    """``learner.coerce(target_for(label, positive_class))`` of each label (the learned labels' targets, after
    their batch: the learner's classes no longer move), computed once per distinct bool, int or str label.

    >>> from driftline.models.features import FeatureSchema
    >>> from driftline.models.specs import build_model
    >>> learner = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary", classes={0, 1})
    >>> learned_targets(learner, [True, "no", 1, True, 0.0])
    [1, 0, 1, 1, 0]
    """
    coerce, out, known = learner.coerce, [], {}
    kinds = set(map(type, labels))
    if len(kinds) == 1 and kinds <= {bool, int, str}:  # the usual batch: one kind, a few values, each coerced once
        by_value = {label: coerce(target_for(label, positive_class)) for label in dict.fromkeys(labels)}
        return list(map(by_value.__getitem__, labels))
    for label in labels:
        kind = type(label)
        if kind is bool or kind is int or kind is str:  # a float may be -0.0: its text differs from 0.0's
            try:
                out.append(known[kind, label])
            except KeyError:
                out.append(known.setdefault((kind, label), coerce(target_for(label, positive_class))))
        else:
            out.append(coerce(target_for(label, positive_class)))
    return out


def offset_bounds(records: Sequence[Any]) -> dict[tuple[str, int], tuple[int, int]]:
    """The lowest and the highest offset of ``records`` (Kafka records: ``topic``, ``partition``, ``offset``) per
    partition, in the order the partitions first come; a run of one partition's records at a time (where the
    partition changes is found in C over the batch's columns: no step of Python a record).

    >>> from types import SimpleNamespace as R
    >>> offset_bounds([R(topic="l", partition=0, offset=5), R(topic="l", partition=1, offset=2),
    ...                R(topic="l", partition=0, offset=3), R(topic="m", partition=0, offset=9)])
    {('l', 0): (3, 5), ('l', 1): (2, 2), ('m', 0): (9, 9)}
    """
    topics, partitions = set(map(_TOPIC, records)), set(map(_PARTITION_NUMBER, records))
    if len(topics) == len(partitions) == 1:  # one partition (the usual batch): no tuple a record
        offsets = list(map(_OFFSET, records))
        return {(topics.pop(), partitions.pop()): (min(offsets), max(offsets))}
    keys, offsets = list(map(_PARTITION, records)), list(map(_OFFSET, records))
    if not keys:
        return {}
    bounds: dict[tuple[str, int], tuple[int, int]] = {}
    start = 0
    for end in [*itertools.compress(range(1, len(keys)), map(operator.ne, keys, keys[1:])), len(keys)]:
        low, high = min(offsets[start:end]), max(offsets[start:end])
        known = bounds.get(keys[start])
        bounds[keys[start]] = (low, high) if known is None else (min(low, known[0]), max(high, known[1]))
        start = end
    return bounds


def last_offsets(records: Iterable[Any]) -> dict[tuple[str, int], int]:
    """The highest offset of ``records`` (Kafka records: ``topic``, ``partition``, ``offset``) per partition:
    what ``mark_offset`` of each record, in any order, leaves.

    >>> from types import SimpleNamespace as R
    >>> last_offsets([R(topic="l", partition=0, offset=5), R(topic="l", partition=1, offset=2),
    ...               R(topic="l", partition=0, offset=3)])
    {('l', 0): 5, ('l', 1): 2}
    """
    return {key: high for key, (_, high) in offset_bounds(list(records)).items() if high > -1}


_OFFSET, _PARTITION = operator.attrgetter("offset"), operator.attrgetter("topic", "partition")
_TOPIC, _PARTITION_NUMBER = operator.attrgetter("topic"), operator.attrgetter("partition")


def snapshot_due(
    learner: OnlineLearner, since: int, last: float, every_labels: int, every_seconds: float, min_seconds: float = 0.0
) -> bool:
    """A new version of ``learner``'s model is due: ``since`` labels learned since the snapshot at monotonic time
    ``last``, at least ``every_labels`` of them or ``every_seconds`` since, and at least ``min_seconds`` since
    (never for a model that does not learn online: it would be the same model).

    >>> from driftline.models.features import FeatureSchema
    >>> from driftline.models.specs import build_model
    >>> learner = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary")
    >>> snapshot_due(learner, 10, time.monotonic(), 10, 60), snapshot_due(learner, 9, time.monotonic(), 10, 60)
    (True, False)
    >>> now = time.monotonic()
    >>> snapshot_due(learner, 10, now, 10, 60, min_seconds=1.0), snapshot_due(learner, 10, now - 1, 10, 60, 1.0)
    (False, True)
    """
    elapsed = time.monotonic() - last
    return (
        learner.updates_model
        and since > 0
        and elapsed >= min_seconds
        and (since >= every_labels or elapsed >= every_seconds)
    )


_EVENT_ID, _LABEL, _TS = (operator.attrgetter(name) for name in ("event_id", "label", "ts"))


def _joined_rows(
    joined: Sequence[tuple[Label, JoinRecord | None]],
    positive_class: Any | None,
    features: Sequence[dict[str, Any]] | None = None,
) -> list[tuple[Any, ...]] | None:
    """:meth:`OnlineLearner.learn_many`'s row of each label when every one has its join record and came within
    its label TTL (the usual batch), built column by column; else None (:func:`learn_batch` goes label by label).
    ``features``: the joins' :func:`features_of`, when known (a :class:`FeatureRows` hands its matrix on).

    >>> join = JoinRecord({"x": 1.0}, True, None, 0.7, 1, expires_ms=10)
    >>> _joined_rows([(Label(event_id="e1", label=True, ts=5), join)], None)
    [('e1', {'x': 1.0}, True, True, None, 5)]
    >>> _joined_rows([(Label(event_id="e1", label=True, ts=11), join)], None) is None
    True
    """
    if not joined:
        return None
    labels, joins = zip(*joined, strict=True)
    if not all(joins):  # a None among them (a record is always true: no == a record)
        return None
    times = list(map(_TS, labels))
    if not all(map(operator.le, times, map(_EXPIRES, joins))):
        return None
    targets = list(map(_LABEL, labels))
    if positive_class is not None:
        targets = [target_for(label, positive_class) for label in targets]
    xs = features if features is not None else features_of(joins)
    if type(xs) is FeatureRows:  # its dicts are built only when a row is read by index (see LabelledBatch)
        columns = (map(_EVENT_ID, labels), itertools.repeat(None, len(times)), targets, map(_PREDICTION, joins))
        return LabelledBatch.of(list(zip(*columns, map(_PROBABILITIES, joins), times, strict=True)), xs)
    columns = (map(_EVENT_ID, labels), xs, targets, map(_PREDICTION, joins), map(_PROBABILITIES, joins))
    return list(zip(*columns, times, strict=True))


def learn_batch(
    learner: OnlineLearner,
    joined: Sequence[tuple[Label, JoinRecord | None]],
    positive_class: Any | None = None,
    features: Sequence[dict[str, Any]] | None = None,
) -> LearnOutcome:
    """Learn each ``(label, join record)`` in order, the joined ones in one :meth:`OnlineLearner.learn_many`; see
    the module docstring for what is rejected. ``features``: :func:`features_of` the join records when every label
    has one (else None)."""
    outcome = LearnOutcome()
    fast = _joined_rows(joined, positive_class, features)  # every label joined in time: no label by label
    rows, positions = (fast, list(range(len(joined)))) if fast is not None else ([], [])
    for i, (label, join) in enumerate(joined if fast is None else ()):
        if join is None and learner.has_learned(label.event_id):
            outcome.rejected.append((i, "join", "DuplicateLabel"))
            outcome.messages[i] = f"the label of '{label.event_id}' was already learned"
            continue
        if join is None:
            outcome.rejected.append((i, "join", "UnknownEvent"))
            outcome.messages[i] = f"no scored event '{label.event_id}' to join (never seen or expired)"
            continue
        if label.ts > join.expires_ms:
            outcome.rejected.append((i, "join", "LateLabel"))
            outcome.messages[i] = f"label at {label.ts} is after the label TTL of its event ({join.expires_ms})"
            continue
        target = label.label if positive_class is None else target_for(label.label, positive_class)
        rows.append((label.event_id, join.x, target, join.prediction, join.probabilities, label.ts))
        positions.append(i)
    learned_rows = learner.learn_many(rows)
    if learned_rows.count(True) == len(learned_rows) and not outcome.rejected:  # every label learned
        outcome.learned_indices = positions
        return outcome
    for i, learned in zip(positions, learned_rows, strict=True):
        label = joined[i][0]
        if learned is True:
            outcome.learned_indices.append(i)
        elif learned is False:
            outcome.rejected.append((i, "join", "DuplicateLabel"))
            outcome.messages[i] = f"the label of '{label.event_id}' was already learned"
        elif isinstance(learned, ValueError):
            outcome.rejected.append((i, "validate", "LabelError"))
            outcome.messages[i] = str(learned)
        else:  # no label may stop learning: this one alone is dead-lettered
            error_class, outcome.messages[i] = unexpected_reason(learned)
            outcome.rejected.append((i, "unexpected", error_class))
    outcome.learned_indices.sort()
    outcome.rejected.sort()
    return outcome
