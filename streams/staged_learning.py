"""Learning in stages of ``every`` labels beside a frozen copy of the model: the error stream of concept drift.

The learning monitor's concept-drift detectors watch an error stream. The errors of the *served* predictions
depend on the version each scorer held when it scored each event: on a backlog the scorers run thousands of events
ahead of the learner and score with versions several snapshots old; paced, how stale they are depends on the
reload interval and the machine. The same 20,000 events gave concept delays of 285-914 events live against 482
in order (issue 12). So each label is also predicted, just before it is learned, by the model *as it stood at the
last multiple of* ``every`` *labels learned* (what an in-order deployment that snapshots every ``every`` labels
would serve): an error stream that depends only on the labels and their order, never on the pace, the batch sizes
or the number of workers. The realised metric and CBPE keep the served predictions (what users got).

Pure: no I/O. After a restart or a rebalance the copy starts again from the checkpointed model.

Examples
--------
>>> from driftline.contract.records import Label
>>> from driftline.models.features import FeatureSchema
>>> from driftline.models.learner import OnlineLearner
>>> from driftline.models.specs import build_model
>>> learner = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary")
>>> frozen = FrozenModel(learner.model, learner.learned, every=4)
>>> joined = [(Label(event_id=f"e{i}", label=i % 2 == 1, ts=i), JoinRecord({"x": float(i % 2)}, False, None, None,
...           1, 10**6)) for i in range(10)]
>>> outcome, predictions = learn_staged(learner, joined, frozen)
>>> outcome.learned, len(predictions), frozen.boundary  # the copy was refreshed after labels 4 and 8
(10, 10, 12)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from driftline.contract.records import Label
from driftline.models.feature_rows import FeatureRows
from driftline.models.learner import OnlineLearner
from driftline.models.minibatch import predict_rows
from driftline.models.scoring import MIN_FRAME_ROWS, is_complete, native, score_batch
from driftline.streams.learning_stage import JoinRecord, LearnOutcome, features_of, learn_batch

__all__ = ["FrozenModel", "learn_staged"]


class FrozenModel:
    """A copy of the learning model ``source``, taken again each time the labels learned reach a multiple of
    ``every`` (a model that does not learn online is used as it is)."""

    def __init__(self, source: Any, learned: int, every: int):
        if every < 1:
            raise ValueError("every must be >= 1")
        self.source, self.every = source, every
        self.model = copy.deepcopy(source) if hasattr(source, "learn_one") else source
        self.boundary = (learned // every + 1) * every

    def room(self, learned: int) -> int:
        """Labels that may be learned before the copy is due again."""
        return max(1, self.boundary - learned)

    def follow(self, learned: int) -> None:
        """Take the copy again when ``learned`` reached the boundary."""
        if learned >= self.boundary:
            self.model = copy.deepcopy(self.source) if hasattr(self.source, "learn_one") else self.source
            self.boundary = (learned // self.every + 1) * self.every


_UNSCORED = object()


def predict(model: Any, task: str, rows: Sequence[dict[str, Any]]) -> list[Any]:
    """The predictions of ``rows``: :func:`~driftline.models.minibatch.predict_rows` for a linear pipeline on
    numbers (``predict_many``'s figures on one matrix), River's ``predict_many`` on one DataFrame when every row is
    complete (5.6 us a row against 14 for :func:`~driftline.models.scoring.score_batch`, which builds
    probabilities), else ``score_batch``; a row that cannot be scored gets ``_UNSCORED``."""
    if not rows:
        return []
    if len(rows) >= MIN_FRAME_ROWS:
        fast = predict_rows(model, rows)  # a linear pipeline on numbers: predict_many's figures, no frame
        if fast is not None:
            return fast
    rows = rows.dicts() if type(rows) is FeatureRows else rows  # a model that needs the dicts: a list of them
    columns = len(set().union(*rows))
    if len(rows) >= MIN_FRAME_ROWS and hasattr(model, "predict_many") and all(is_complete(r, columns) for r in rows):
        try:
            values = model.predict_many(pd.DataFrame.from_records(rows)).tolist()
        except Exception:  # noqa: BLE001 - any failure of the batch path: every row is scored alone below
            values = []
        if len(values) == len(rows) and not any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
            return [native(v) for v in values]
    return [_UNSCORED if s.error is not None else s.prediction for s in score_batch(model, task, rows)]


def learn_staged(
    learner: OnlineLearner,
    joined: Sequence[tuple[Label, JoinRecord | None]],
    frozen: FrozenModel,
    positive_class: Any | None = None,
) -> tuple[LearnOutcome, dict[int, Any]]:
    """:func:`~driftline.streams.learning_stage.learn_batch` in pieces ending where ``frozen`` is due again; also
    the frozen model's prediction of each joined label, by index into ``joined``, made before it was learned (a
    row the frozen model cannot score has none)."""
    outcome, predicted = LearnOutcome(), {}
    start = 0
    while start < len(joined):
        part = joined[start : start + frozen.room(learner.learned)]
        joins = [join for _, join in part]
        features = None
        if not all(joins):  # a None among them (a record is always true)
            indices = [i for i, join in enumerate(joins) if join is not None]
            rows = [joins[i].x for i in indices]  # type: ignore[union-attr]
        else:  # every label joined (the usual batch): their features with the matrix they were decoded into
            indices, rows = list(range(len(part))), features_of(joins)  # type: ignore[arg-type]
            features = rows
        for i, prediction in zip(indices, predict(frozen.model, learner.task, rows), strict=True):
            if prediction is not _UNSCORED:
                predicted[start + i] = prediction
        done = learn_batch(learner, part, positive_class, features)
        outcome.learned_indices += [start + i for i in done.learned_indices]
        outcome.rejected += [(start + i, stage, error) for i, stage, error in done.rejected]
        outcome.messages.update({start + i: message for i, message in done.messages.items()})
        frozen.follow(learner.learned)
        start += len(part)
    return outcome, predicted
