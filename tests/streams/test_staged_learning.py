"""Learning in stages beside a frozen copy: the concept-drift error stream does not depend on how labels are
batched, and each label is predicted by the model as it stood at the last multiple of ``every`` labels."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.contract.records import Label
from driftline.models.features import FeatureSchema
from driftline.models.learner import OnlineLearner
from driftline.models.scoring import score_batch
from driftline.models.specs import build_model
from driftline.streams.learning_stage import JoinRecord
from driftline.streams.staged_learning import FrozenModel, learn_staged

SCHEMA = FeatureSchema({"x": "numeric", "z": "numeric"})
EVERY = 50


def stream(n: int, seed: int = 0) -> list[tuple[Label, JoinRecord | None]]:
    """Labels of a concept that flips at the middle; every 37th label has no join record (dead-lettered)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[Label, JoinRecord | None]] = []
    for i in range(n):
        x, z = rng.normal(), rng.normal()
        label = (x > 0) if i < n // 2 else (x <= 0)
        join = None if i % 37 == 36 else JoinRecord({"x": x, "z": z}, True, None, None, 1, 10**12)
        out.append((Label(event_id=f"e{i}", label=bool(label), ts=1_000 + i), join))
    return out


def replay(labels: list[tuple[Label, JoinRecord | None]], sizes: list[int]) -> tuple[list[object], OnlineLearner]:
    """The frozen model's predictions of the learned labels when the labels come in batches of ``sizes``."""
    learner = OnlineLearner(build_model(SCHEMA, "binary"), "binary")
    frozen, start, predictions = None, 0, []
    for size in sizes:
        batch = labels[start : start + size]
        if frozen is None:
            frozen = FrozenModel(learner.model, learner.learned, EVERY)
        outcome, staged = learn_staged(learner, batch, frozen)
        predictions += [staged[i] for i in outcome.learned_indices]
        start += size
    return predictions, learner


@settings(max_examples=15)
@given(st.integers(0, 2**31))
def test_the_frozen_models_predictions_do_not_depend_on_the_batch_sizes(seed: int) -> None:
    labels = stream(600)
    rng = random.Random(seed)
    sizes = []
    while sum(sizes) < len(labels):
        sizes.append(rng.randint(1, 130))
    one, learner_one = replay(labels, [len(labels)])
    many, learner_many = replay(labels, sizes)
    assert many == one
    assert learner_many.learned == learner_one.learned == len([j for _, j in labels if j is not None])


def test_each_label_is_predicted_by_the_model_as_it_stood_at_the_last_multiple_of_every_labels() -> None:
    labels = [(label, join) for label, join in stream(400, seed=1) if join is not None]
    predictions, _ = replay(labels, [len(labels)])
    model = build_model(SCHEMA, "binary")
    expected = []
    for k, (label, join) in enumerate(labels):
        if k % EVERY == 0:
            copy_at_boundary = copy.deepcopy(model)
        assert join is not None
        expected.append(score_batch(copy_at_boundary, "binary", [join.x])[0].prediction)
        model.learn_one(dict(join.x), label.label)
    assert predictions == expected
    # the control: the served prediction (always True) would give another error stream
    assert predictions != [True] * len(labels)


def test_a_model_that_does_not_learn_online_is_used_as_it_is() -> None:
    class Fixed:
        def predict_proba_one(self, x: dict[str, float]) -> dict[bool, float]:
            return {True: 0.9, False: 0.1}

    model = Fixed()
    frozen = FrozenModel(model, 0, EVERY)
    assert frozen.model is model
    frozen.follow(EVERY)
    assert frozen.model is model and frozen.boundary == 2 * EVERY


@settings(max_examples=150, deadline=None)
@given(
    task=st.sampled_from(["binary", "multiclass", "regression"]),
    known=st.sampled_from([(), (True, False), ("a", "b"), (0, 1), (1, 2)]),
    positive=st.sampled_from([None, "a", "1", True, 1, "0.0", "-0.0"]),
    labels=st.lists(
        st.one_of(
            st.booleans(),
            st.integers(-2, 3),
            st.sampled_from(["a", "b", "1", "0", "true", "no", "7"]),
            st.sampled_from([0.0, -0.0, 1.0, 2.0]),
        ),
        max_size=30,
    ),
)
def test_learned_targets_are_each_labels_coerced_target(task, known, positive, labels) -> None:
    """The learned labels' targets computed once per distinct bool, int or str label equal coercing each label's
    target (a float every time: -0.0 and 0.0 are one key but not one text)."""
    from driftline.streams.learning_stage import learned_targets, target_for

    classes = () if task == "regression" else known
    learner = OnlineLearner(build_model(SCHEMA, task), task, classes=classes)

    def each(label):
        try:
            return repr(learner.coerce(target_for(label, positive)))
        except ValueError as exc:
            return repr(exc)

    expected = [each(label) for label in labels]
    if any(e.startswith("ValueError") for e in expected):  # learned labels were coerced once already
        return
    got = learned_targets(learner, labels, positive)
    assert [repr(y) for y in got] == expected
    assert [type(y) for y in got] == [type(learner.coerce(target_for(label, positive))) for label in labels]


@settings(max_examples=100, deadline=None)
@given(
    records=st.lists(
        st.tuples(st.sampled_from(["labels", "other"]), st.integers(0, 3), st.integers(0, 10**6)), max_size=40
    ),
    before=st.lists(st.tuples(st.sampled_from(["labels", "other"]), st.integers(0, 3), st.integers(0, 10**6))),
)
def test_marking_the_last_offset_per_partition_leaves_what_marking_every_record_leaves(records, before) -> None:
    from types import SimpleNamespace

    from driftline.streams.learning_stage import last_offsets

    each, once = (OnlineLearner(build_model(SCHEMA, "binary"), "binary") for _ in range(2))
    for learner in (each, once):
        for topic, partition, offset in before:
            learner.mark_offset(topic, partition, offset)
    kafka = [SimpleNamespace(topic=t, partition=p, offset=o) for t, p, o in records]
    for record in kafka:
        each.mark_offset(record.topic, record.partition, record.offset)
    for (topic, partition), offset in last_offsets(kafka).items():
        once.mark_offset(topic, partition, offset)
    assert once.offsets == each.offsets


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"]),
            st.sampled_from([True, False, 0, 1, "fraud", "ok", 7]),
            st.sampled_from([*range(10), 11]),  # the label's time; its event's join record expires at 10
            st.sampled_from([True] * 6 + [False]),  # the join record found
        ),
        max_size=20,
    ),
    positive=st.sampled_from([None, "fraud", True]),
    sizes=st.lists(st.integers(1, 8), min_size=1, max_size=4),
)
def test_a_batch_learned_column_by_column_ends_where_label_by_label_ends(rows, positive, sizes) -> None:
    """learn_batch's usual batch (every label joined in time) built column by column: the outcomes (learned,
    dead-lettered with their reasons and messages), the learned ids and the metrics equal the label-by-label path's,
    whatever the batch holds (late labels, unknown events, duplicates, labels that do not fit)."""
    import driftline.streams.learning_stage as stage

    joined = [
        (
            Label(event_id=e, label=y, ts=ts),
            JoinRecord({"x": float(ts), "z": 1.0}, True, None, None, 1, 10) if found else None,
        )
        for e, y, ts, found in rows
    ]
    got = []
    for columns in (True, False):
        learner = OnlineLearner(build_model(SCHEMA, "binary"), "binary")
        with pytest.MonkeyPatch.context() as patch:
            if not columns:
                patch.setattr(stage, "_joined_rows", lambda joined, positive_class, features=None: None)
            start, outcomes = 0, []
            while start < len(joined):
                size = sizes[len(outcomes) % len(sizes)]
                outcome = stage.learn_batch(learner, joined[start : start + size], positive)
                outcomes.append((outcome.learned_indices, outcome.rejected, outcome.messages))
                start += size
        got.append((outcomes, learner.metrics(), [a.tolist() for a in learner._ids._ordered()], learner.learned))
    assert got[0] == got[1]
