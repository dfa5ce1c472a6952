"""The online learner: label coercion, exactly-once learning, bounded de-duplication, metrics, checkpoints."""

from __future__ import annotations

import collections
import contextlib
import copy
import pickle
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import metrics, utils

from driftline.contract.signing import SEAL_MAGIC, IntegrityError, as_keyring, seal
from driftline.models.features import FeatureSchema
from driftline.models.learned_ids import digest
from driftline.models.learner import OnlineLearner, coerce_label, tally
from driftline.models.specs import build_model

SCHEMA = FeatureSchema({"x": "numeric", "c": "categorical"})
KEY = b"learner-key"


def learner(task: str = "binary", **kwargs: Any) -> OnlineLearner:
    return OnlineLearner(build_model(SCHEMA, task), task, **kwargs)


def probe(model: Any) -> list[Any]:
    xs = [{"x": v / 4, "c": c} for v in range(-4, 9) for c in "abc"]
    return [model.predict_proba_one(x) for x in xs]


@pytest.mark.parametrize(
    ("task", "raw", "classes", "expected"),
    [
        ("binary", True, (), True),
        ("binary", 0, (), False),
        ("binary", 1.0, (), True),
        ("binary", " Yes ", (), True),
        ("binary", "0", (), False),
        ("binary", 1, {0, 1}, 1),
        ("binary", "fraud", {"fraud", "ok"}, "fraud"),
        ("multiclass", "cat", (), "cat"),
        ("multiclass", 3.0, (), 3),
        ("multiclass", "2", {1, 2}, 2),
        ("multiclass", 2, {"1", "2"}, "2"),
        ("multiclass", 7, {"a", "b"}, "7"),
        ("regression", 3, (), 3.0),
        ("regression", "-1.5", (), -1.5),
    ],
)
def test_coerce_label_fits_labels_to_the_task_and_known_classes(
    task: str, raw: Any, classes: Any, expected: Any
) -> None:
    """Labels become the type the model learns with (bool, the known classes' type, float)."""
    got = coerce_label(task, raw, classes)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("task", "raw", "classes", "reason"),
    [
        ("binary", 2, (), "true/false or 0/1"),
        ("binary", "maybe", (), "true/false or 0/1"),
        ("binary", "other", {"fraud", "ok"}, "not one of the model's classes"),
        ("multiclass", 1.5, (), "integer class"),
        ("multiclass", True, (), "got bool"),
        ("multiclass", "cat", {1, 2}, "not an integer"),
        ("regression", "ten", (), "must be a number"),
        ("regression", True, (), "got bool"),
        ("regression", float("inf"), (), "finite"),
        ("ranking", 1, (), "unknown task"),
    ],
)
def test_coerce_label_rejects_labels_that_do_not_fit_with_a_reason(
    task: str, raw: Any, classes: Any, reason: str
) -> None:
    """A label that cannot fit raises ValueError saying why (the agent dead-letters it)."""
    with pytest.raises(ValueError, match=reason):
        coerce_label(task, raw, classes)


def test_duplicate_label_is_learned_once_and_leaves_the_model_untouched() -> None:
    """The second label for an event returns False; the model equals one that learned the label once."""
    a, b = learner(), learner()
    assert a.learn("e1", {"x": 1.0, "c": "a"}, True) is True
    assert a.learn("e1", {"x": 1.0, "c": "a"}, True) is False
    assert a.learn("e1", {"x": -5.0, "c": "b"}, False) is False
    b.learn("e1", {"x": 1.0, "c": "a"}, True)
    assert a.learned == 1
    assert probe(a.model) == probe(b.model)


def test_a_label_that_does_not_fit_raises_and_changes_nothing() -> None:
    """A bad label raises ValueError before learning: count, ids and model are unchanged; a retry can succeed."""
    lr = learner()
    before = probe(lr.model)
    with pytest.raises(ValueError, match="binary label"):
        lr.learn("e1", {"x": 1.0, "c": "a"}, "perhaps")
    assert (lr.learned, lr.remembered_ids, probe(lr.model)) == (0, 0, before)
    assert lr.learn("e1", {"x": 1.0, "c": "a"}, 1) is True


def test_learning_does_not_mutate_the_features_dict() -> None:
    """The caller's feature dict is the same after learn()."""
    x = {"x": 1.0, "c": "a"}
    learner().learn("e1", x, True)
    assert x == {"x": 1.0, "c": "a"}


def test_classification_metrics_match_river_on_the_served_predictions() -> None:
    """Accuracy/F1/LogLoss use what was served (str-keyed probabilities), cumulative and rolling."""
    rng = random.Random(0)
    lr = learner(metric_window=10)
    acc, f1, logloss = metrics.Accuracy(), metrics.F1(), metrics.LogLoss()
    rolling_acc = metrics.Accuracy()
    served = []
    for i in range(40):
        y, p = rng.random() < 0.5, rng.random()
        served.append((y, p >= 0.5))
        lr.learn(f"e{i}", {"x": 1.0, "c": "a"}, int(y), p >= 0.5, {"True": p, "False": 1 - p})
        acc.update(y, p >= 0.5)
        f1.update(y, p >= 0.5)
        logloss.update(y, {True: p, False: 1 - p})
    for y, pred in served[-10:]:
        rolling_acc.update(y, pred)
    got = lr.metrics()
    assert got["accuracy"] == pytest.approx(acc.get())
    assert got["f1"] == pytest.approx(f1.get())
    assert got["logloss"] == pytest.approx(logloss.get())
    assert got["accuracy_rolling"] == pytest.approx(rolling_acc.get())
    assert set(got) == {"accuracy", "f1", "logloss", "accuracy_rolling", "f1_rolling", "logloss_rolling"}


def test_rolling_metrics_follow_a_regime_change_that_cumulative_metrics_average_over() -> None:
    """After 50 right then 20 wrong predictions, rolling accuracy (window 20) is 0, cumulative 50/70."""
    lr = learner(metric_window=20)
    for i in range(70):
        lr.learn(f"e{i}", {"x": 0.0, "c": "a"}, True, i < 50, {"True": 0.9 if i < 50 else 0.1, "False": 0.5})
    got = lr.metrics()
    assert got["accuracy_rolling"] == 0.0
    assert got["accuracy"] == pytest.approx(50 / 70)


def test_regression_metrics_are_mae_and_rmse_of_served_values() -> None:
    """MAE and RMSE over (label, served value) pairs, e.g. errors 1 and 3 give MAE 2, RMSE sqrt(5)."""
    lr = learner("regression")
    lr.learn("a", {"x": 1.0, "c": "a"}, 2, 1.0)
    lr.learn("b", {"x": 1.0, "c": "a"}, "5", 8.0)
    got = lr.metrics()
    assert got["mae"] == pytest.approx(2.0) and got["rmse"] == pytest.approx(5**0.5)
    assert got["mae_rolling"] == pytest.approx(2.0)


def test_multiclass_metrics_and_classes_accumulate() -> None:
    """Multiclass uses accuracy, macro F1 and cross-entropy; learned classes steer later coercion."""
    lr = learner("multiclass")
    lr.learn("a", {"x": 1.0, "c": "a"}, 1, None, None)
    lr.learn("b", {"x": 2.0, "c": "b"}, "2", "1", {"1": 0.7, "2": 0.3})
    assert lr.classes == {1, 2}
    got = lr.metrics()
    assert got["accuracy"] == 0.0
    assert set(got) >= {"macro_f1", "logloss", "logloss_rolling"}


def test_metrics_are_absent_until_a_served_prediction_was_seen() -> None:
    """Labels without y_pred/proba are learned but feed no metric (no misleading zeros)."""
    lr = learner()
    lr.learn("a", {"x": 1.0, "c": "a"}, True)
    assert lr.learned == 1 and lr.metrics() == {}


def test_offsets_are_per_partition_monotone_and_resume_after_the_last_applied() -> None:
    """next_offset is last applied + 1 per (topic, partition); None when unseen; never moves back."""
    lr = learner()
    assert lr.next_offset("labels", 0) is None
    lr.mark_offset("labels", 0, 10)
    lr.mark_offset("labels", 0, 7)
    lr.mark_offset("labels", 1, 0)
    assert (lr.next_offset("labels", 0), lr.next_offset("labels", 1), lr.next_offset("other", 0)) == (11, 1, None)
    assert lr.offsets == {("labels", 0): 10, ("labels", 1): 0}


def test_learned_ids_are_capped_oldest_forgotten_first() -> None:
    """max_learned_ids bounds memory: the oldest ids are forgotten, the newest still deduplicate."""
    lr = learner(max_learned_ids=5)
    for i in range(12):
        lr.learn(f"e{i}", {"x": 1.0, "c": "a"}, True)
    assert lr.remembered_ids == 5
    assert lr.learn("e11", {"x": 1.0, "c": "a"}, True) is False and lr.learn("e7", {"x": 1.0, "c": "a"}, True) is False
    assert lr.learn("e0", {"x": 1.0, "c": "a"}, True) is True, "forgotten: learned again"


def test_checkpoint_round_trip_restores_model_offsets_ids_and_metrics() -> None:
    """A restored learner predicts the same, resumes at the same offsets, dedups the same ids."""
    lr = learner()
    for i in range(30):
        lr.learn(f"e{i}", {"x": float(i % 3), "c": "ab"[i % 2]}, i % 2, True, {"True": 0.6, "False": 0.4})
        lr.mark_offset("labels", i % 2, i)
    back = OnlineLearner.restore(lr.checkpoint(hmac_key=KEY), hmac_key=KEY)
    assert probe(back.model) == probe(lr.model)
    assert back.offsets == lr.offsets and back.metrics() == lr.metrics() and back.learned == 30
    assert back.learn("e3", {"x": 0.0, "c": "a"}, 1) is False


class TouchOnUnpickle:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


def test_restore_refuses_a_forged_or_foreign_checkpoint_without_unpickling(tmp_path: Path) -> None:
    """Wrong key, tampered payload, or not a checkpoint at all: IntegrityError, the payload never runs."""
    marker = tmp_path / "pwned"
    evil = pickle.dumps(TouchOnUnpickle(marker))
    good = learner().checkpoint(hmac_key=KEY)
    header = good[: good.index(b"\n", len(SEAL_MAGIC)) + 1]
    with pytest.raises(IntegrityError, match="does not match"):
        OnlineLearner.restore(header + evil, hmac_key=KEY)
    with pytest.raises(IntegrityError, match="not in the keyring"):
        OnlineLearner.restore(good, hmac_key=b"other")
    with pytest.raises(IntegrityError, match="does not match"):
        OnlineLearner.restore(good, hmac_key=KEY, purpose="learner:another-model")
    with pytest.raises(IntegrityError, match="not a signed"):
        OnlineLearner.restore(evil, hmac_key=KEY)
    assert not marker.exists()


def label_stream(n: int, seed: int = 0) -> list[tuple[int, int, str, dict[str, Any], bool]]:
    """(partition, offset, event_id, x, y) over two partitions, with ~10% duplicate labels."""
    rng = random.Random(seed)
    next_offset = [0, 0]
    out = []
    for i in range(n):
        eid = f"e{rng.randrange(i)}" if i > 10 and rng.random() < 0.1 else f"e{i}"
        x = {"x": rng.uniform(-1, 2), "c": rng.choice("abc")}
        part = rng.randrange(2)
        out.append((part, next_offset[part], eid, x, x["x"] > 0.5))
        next_offset[part] += 1
    return out


def run(lr: OnlineLearner, stream: list[Any], stop: int | None = None, every: int = 25) -> bytes | None:
    """Consume the stream from each partition's next_offset; checkpoint every `every` messages; crash at stop."""
    saved = None
    for n, (part, offset, eid, x, y) in enumerate(stream):
        nxt = lr.next_offset("labels", part)
        if nxt is not None and offset < nxt:
            continue
        if stop is not None and n == stop:
            return saved  # kill -9: everything after the last checkpoint is lost
        lr.learn(eid, x, y, y, {"True": 0.5, "False": 0.5})
        lr.mark_offset("labels", part, offset)
        if (n + 1) % every == 0:
            saved = lr.checkpoint(hmac_key=KEY)
    return saved


@pytest.mark.parametrize("crash_at", [0, 1, 24, 25, 26, 137, 299])
def test_kill_and_resume_from_checkpoint_learns_every_label_exactly_once(crash_at: int) -> None:
    """Crash at message k, restore the last checkpoint, seek to next_offset: same state as an unbroken run."""
    stream = label_stream(300)
    reference = learner()
    run(reference, stream)
    crashed = learner()
    saved = run(crashed, stream, stop=crash_at)
    resumed = OnlineLearner.restore(saved, hmac_key=KEY) if saved is not None else learner()
    run(resumed, stream)
    unique = len({eid for _, _, eid, _, _ in stream})
    assert resumed.learned == reference.learned == unique
    assert probe(resumed.model) == probe(reference.model)
    assert resumed.metrics() == reference.metrics()
    assert resumed.offsets == reference.offsets


def _rows(n: int) -> list[tuple[str, dict[str, Any], Any, Any, Any, int]]:
    rng = random.Random(3)
    out = []
    for i in range(n):
        x = {"x": rng.gauss(0, 1), "c": rng.choice("abc")}
        y: Any = rng.choice([True, False, 1, "no", 7]) if i % 50 == 0 else x["x"] > 0
        served = rng.random()
        out.append((f"e{i % 900}", x, y, served > 0.5, {"True": served, "False": 1 - served}, 1000 + i))
    return out


def test_learn_many_learns_as_learn_one_by_one() -> None:
    """A batch (duplicates inside it and of earlier batches, labels that do not fit) gives the outcomes, metrics,
    model and remembered ids that learn() one label at a time gives."""
    data = _rows(1200)
    one, many = learner(), learner()
    expected: list[Any] = []
    for event_id, x, y, pred, proba, ts in data:
        try:
            expected.append(one.learn(event_id, x, y, pred, proba, ts))
        except ValueError as exc:
            expected.append(str(exc))
    got: list[Any] = []
    for start in range(0, len(data), 400):
        got += [str(o) if isinstance(o, Exception) else o for o in many.learn_many(data[start : start + 400])]
    assert got == expected and expected.count(False) >= 290 and sum(isinstance(o, str) for o in got) > 0
    assert many.metrics() == one.metrics() and many.learned == one.learned
    assert [a.tolist() for a in many._ids._ordered()] == [a.tolist() for a in one._ids._ordered()]
    assert [p[True] for p in probe(many.model)] == pytest.approx([p[True] for p in probe(one.model)], rel=1e-9)


def test_a_row_the_model_cannot_learn_is_kept_out_and_the_rest_of_its_batch_learned() -> None:
    """A numeric feature sent as text fails its row alone: the batch is undone and learned row by row."""
    data = _rows(200)
    data = [(f"u{i}", x, bool(x["x"] > 0), None, None, 10 + i) for i, (_, x, *_) in enumerate(data)]
    data[70] = ("bad", {"x": "oops", "c": "a"}, True, None, None, 80)
    lr = learner()
    outcomes = lr.learn_many(data)
    assert isinstance(outcomes[70], TypeError) and outcomes.count(True) == 199 and lr.learned == 199
    assert digest("bad") not in lr._ids and lr.learn("u3", {"x": 1.0, "c": "a"}, True) is False
    again = [
        ("twice", {"x": "oops", "c": "a"}, True, None, None, 1),
        ("twice", {"x": 2.0, "c": "a"}, True, None, None, 2),
    ]
    outcomes = lr.learn_many(again)
    assert isinstance(outcomes[0], TypeError) and outcomes[1] is True, "as one by one: the second is no duplicate"


def test_a_numeric_pipeline_batch_is_learned_without_a_copy_of_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """On plain lists a failed batch wrote nothing: no deepcopy of the model before each batch, and a row that
    fails is still kept out alone, the rest learned as one by one."""
    numeric = FeatureSchema({"x": "numeric"})
    data = [(f"n{i}", {"x": (i % 13) / 4}, i % 13 > 6, None, None, 10 + i) for i in range(300)]
    data[90] = ("bad", {"x": "oops"}, True, None, None, 100)
    one, many = (OnlineLearner(build_model(numeric, "binary"), "binary") for _ in range(2))
    for row in data:
        with contextlib.suppress(TypeError):
            one.learn(*row)

    def no_copy(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the model was copied")

    monkeypatch.setattr(copy, "deepcopy", no_copy)
    outcomes = many.learn_many(data)
    assert isinstance(outcomes[90], TypeError) and outcomes.count(True) == 299
    xs = [{"x": v / 4} for v in range(13)]
    assert [many.model.predict_proba_one(x)[True] for x in xs] == pytest.approx(
        [one.model.predict_proba_one(x)[True] for x in xs], rel=1e-9
    )


def test_the_exactly_once_window_is_label_event_time_and_a_label_far_ahead_does_not_move_it() -> None:
    """An id is a duplicate while the clock (median time of the recent labels) is at most window_ms after it; older
    ids are forgotten (not early); one label dated far ahead forgets nothing; the cap forgets ids inside the
    window and counts them as forgotten early."""

    def row(event_id: str, ts: int) -> tuple[str, dict[str, Any], bool, None, None, int]:
        return (event_id, {"x": 1.0, "c": "a"}, True, None, None, ts)

    lr = learner(window_ms=1000, max_learned_ids=100)
    assert lr.learn_many([row("a", 5_000), row("b", 5_900)]) == [True, True]
    assert lr.learn_many([row("a", 5_000)]) == [False], "inside the window"
    assert lr.learn_many([row("c", 6_001), row("d", 6_001), row("e", 6_001)]) == [True] * 3
    assert lr.remembered_ids == 4 and lr.forgotten_early == 0
    assert lr.learn_many([row("a", 5_000)]) == [True], "out of the window: learned again"
    assert lr.learn_many([row("far", 10**13)]) == [True]
    assert lr.learn_many([row(x, 6_001) for x in "bcdea"]) == [False] * 5, "the label far ahead forgot nothing"
    lr.limit_ids(3, 1000)
    assert lr.remembered_ids == 3 and lr.forgotten_early == 3
    back = OnlineLearner.restore(lr.checkpoint(hmac_key=KEY), hmac_key=KEY)
    assert back.forgotten_early == 3 and back.learn_many([row("far", 6_002), row("b", 6_002)]) == [False, True]


def test_a_checkpoint_from_before_the_window_keeps_its_ids() -> None:
    """A checkpoint whose learned ids were an ordered dict (no times) restores them: duplicates still refused."""
    lr = learner()
    for i in range(5):
        lr.learn(f"e{i}", {"x": 1.0, "c": "a"}, True)
    old = dict(lr.__dict__, max_learned_ids=3)
    old["_ids"] = OrderedDict((f"e{i}", None) for i in range(5))
    blob = seal(as_keyring(KEY), pickle.dumps(old), "learner")
    back = OnlineLearner.restore(blob, hmac_key=KEY)
    assert back.remembered_ids == 3 and back.forgotten_early == 2 and back.learned == 5
    assert back.learn("e4", {"x": 1.0, "c": "a"}, True, ts=10**12) is False
    assert back.learn("e0", {"x": 1.0, "c": "a"}, True, ts=10**12) is True


def test_metrics_keep_counting_after_a_restore() -> None:
    """The cumulative and rolling metrics share confusion matrices; a restored learner still feeds them all."""
    data = _rows(300)
    lr = learner(metric_window=50)
    lr.learn_many(data[:150])
    back = OnlineLearner.restore(lr.checkpoint(hmac_key=KEY), hmac_key=KEY)
    lr.learn_many(data[150:])
    back.learn_many(data[150:])
    assert back.metrics() == lr.metrics()
    assert lr.metrics()["accuracy_rolling"] != lr.metrics()["accuracy"]


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_confusion_matrices_fed_a_batch_at_once_hold_what_one_label_at_a_time_leaves(task: str) -> None:
    """Batches larger than the rolling window, served predictions missing on some rows, a class first seen
    mid-batch: every metric and both confusion matrices (cells, sums, sample counts, window) as label by label."""
    rng = random.Random(5)
    classes = [True, False] if task == "binary" else ["a", "b", "c"]
    data = []
    for i in range(900):
        y = rng.choice(classes if i > 300 or task == "binary" else classes[:2])
        served = None if i % 11 == 0 else rng.choice(classes)
        proba = None if task == "multiclass" or i % 7 == 0 else {"True": 0.7, "False": 0.3}
        data.append((f"e{i}", {"x": rng.random(), "c": "a"}, y, served, proba, i))
    one, many = learner(task, metric_window=50), learner(task, metric_window=50)
    for row in data:
        one.learn(*row)
    for start in range(0, len(data), 170):
        many.learn_many(data[start : start + 170])
    assert many.metrics() == one.metrics() and len(many.metrics()) >= 4
    for (_, matrix_one), (_, matrix_many) in zip(one._feeds[:2], many._feeds[:2], strict=True):
        assert_same_confusion(matrix_many, matrix_one)
        assert getattr(matrix_many, "window", None) == getattr(matrix_one, "window", None)


def assert_same_confusion(ours: Any, theirs: Any) -> None:
    """``ours`` (a confusion matrix, or a rolling one) holds the same counts as ``theirs``, cell for cell."""
    a, b = getattr(theirs, "obj", theirs), getattr(ours, "obj", ours)
    assert {y: dict(row) for y, row in b.data.items()} == {y: dict(row) for y, row in a.data.items()}
    assert (b.n_samples, b.total_weight, b._total_true_positives) == (
        a.n_samples,
        a.total_weight,
        a._total_true_positives,
    )
    assert dict(b.sum_row) == dict(a.sum_row) and dict(b.sum_col) == dict(a.sum_col)


def test_mean_metrics_fed_a_batch_at_once_end_where_one_label_at_a_time_ends() -> None:
    """MAE, RMSE and their rolling twins (each row's value computed once for both): bit for bit as label by label,
    with batches larger than the rolling window."""
    rng = random.Random(9)
    data = [(f"e{i}", {"x": 1.0, "c": "a"}, rng.gauss(0, 3), rng.gauss(0, 3), None, i) for i in range(700)]
    one, many = learner("regression", metric_window=40), learner("regression", metric_window=40)
    for row in data:
        one.learn(*row)
    for start in range(0, len(data), 130):
        many.learn_many(data[start : start + 130])
    assert many.metrics() == one.metrics() and set(one.metrics()) == {"mae", "rmse", "mae_rolling", "rmse_rolling"}


@settings(max_examples=40, deadline=None)
@given(
    task=st.sampled_from(["binary", "regression"]),
    window=st.integers(1, 30),
    sizes=st.lists(st.integers(1, 45), min_size=1, max_size=8),
    seed=st.integers(0, 2**16),
)
def test_mean_metrics_in_batches_equal_rivers_updates_one_by_one_bit_for_bit(task, window, sizes, seed) -> None:
    """The log loss, MAE and RMSE (cumulative and rolling) that learn_many feeds in batches, with River's log
    loss and mean recurrence inlined, hold the very floats River's own ``update`` gives row by row."""
    rng = random.Random(seed)
    lr = learner(task, metric_window=window)
    names = ["logloss"] if task == "binary" else ["mae", "rmse"]
    river = {n: type(lr._metrics[n])() for n in names}
    rolling = {n: utils.Rolling(type(lr._metrics[n]), window_size=window) for n in names}
    i = 0
    for size in sizes:
        rows = []
        for _ in range(size):
            if task == "binary":
                y, p = rng.random() < 0.5, rng.choice([0.0, 1.0, 1e-17, rng.random()])
                rows.append((f"e{i}", {"x": 1.0, "c": "a"}, y, p >= 0.5, {"True": p, "False": 1 - p}, i))
                pair = (y, {True: p, False: 1 - p})
            else:
                y, served = rng.uniform(-5, 5), rng.uniform(-5, 5)
                rows.append((f"e{i}", {"x": 1.0, "c": "a"}, y, served, None, i))
                pair = (y, served)
            for n in names:
                river[n].update(*pair)
                rolling[n].update(*pair)
            i += 1
        lr.learn_many(rows)
        for n in names:
            ours, theirs = lr._metrics[n], river[n]
            assert (ours._mean.n, ours._mean._mean) == (theirs._mean.n, theirs._mean._mean)
            ours, theirs = lr._metrics[f"{n}_rolling"], rolling[n]
            assert (ours.obj._mean.n, ours.obj._mean._mean) == (theirs.obj._mean.n, theirs.obj._mean._mean)
            # a binary log loss keeps the probability of True of each pair (what River's reads of the dict)
            held = [((y, p.get(True, 0.0) if task == "binary" else p), kw) for (y, p), kw in theirs.window]
            assert list(ours.window) == held


served_predictions = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.sampled_from([0.0, -0.0, 1.0, 2.5, float("nan"), "true", "no", "a", "b", "7", ["unhashable"]]),
)
served_probabilities = st.one_of(
    st.none(),
    st.just({}),
    st.floats(0, 1).map(lambda p: {"False": 1.0 - p, "True": p}),
    st.dictionaries(
        st.sampled_from(["True", "False", "1", "0", "a", "b", "7", "yes", "maybe"]),
        st.one_of(st.floats(0, 1), st.sampled_from(["0.5", "text"])),
        max_size=3,
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    task=st.sampled_from(["binary", "multiclass", "regression"]),
    known=st.sampled_from([(), (True, False), ("a", "b"), (1, 2)]),
    rows=st.lists(
        st.tuples(
            st.sampled_from(["e1", "e2", "e3", "e4", "e5", "e6"]),
            st.sampled_from([True, False, 0, 1, "a", "b", 2, "7", 1.5, "yes"]),
            served_predictions,
            served_probabilities,
        ),
        max_size=12,
    ),
)
def test_the_served_values_coerced_once_per_batch_are_what_row_by_row_coercion_gives(task, known, rows) -> None:
    """learn_many coerces the served predictions and probabilities once per distinct value when the batch brings
    no new class: outcomes, metrics, classes and remembered ids equal the row-by-row path's (forced here), whatever
    the values (unusable ones, unhashable ones, probabilities that do not parse)."""
    classes = () if task == "regression" else known
    fast, slow = (
        OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), task), task, classes=classes) for _ in range(2)
    )
    slow._served_known = lambda targets, rows: None  # type: ignore[method-assign]
    slow._served_columns = lambda targets, rows: None  # type: ignore[method-assign]
    data = [(e, {"x": float(i)}, y, p, q, 100 + i) for i, (e, y, p, q) in enumerate(rows)]
    outcomes = []
    for learner_ in (fast, slow):
        try:
            got: Any = [repr(o) for o in learner_.learn_many(data[: len(data) // 2])]
            got += [repr(o) for o in learner_.learn_many(data[len(data) // 2 :])]
        except TypeError as exc:  # a probability that is no number: learn_many raises it on either path
            got = repr(exc)
        outcomes.append(got)
    assert outcomes[0] == outcomes[1]
    assert repr(fast.metrics()) == repr(slow.metrics()) and fast.classes == slow.classes
    assert [a.tolist() for a in fast._ids._ordered()] == [a.tolist() for a in slow._ids._ordered()]
    assert fast.learned == slow.learned and fast._ids.forgotten_early == slow._ids.forgotten_early
    # the served probabilities in the rolling windows: the same dicts, keys in the same order
    assert [repr(list(getattr(m, "window", []))) for _, m in fast._feeds] == [
        repr(list(getattr(m, "window", []))) for _, m in slow._feeds
    ]


@settings(max_examples=40, deadline=None)
@given(
    task=st.sampled_from(["binary", "regression"]),
    window=st.integers(1, 30),
    sizes=st.lists(st.integers(1, 45), min_size=1, max_size=8),
    restore_after=st.integers(0, 8),
    seed=st.integers(0, 2**16),
)
def test_rolling_means_read_their_leaving_values_kept_beside_the_window_the_same_state(
    task, window, sizes, restore_after, seed
) -> None:
    """The values of the pairs in a rolling mean's window are kept from batch to batch (not computed again when
    they leave it): the checkpoint, byte for byte, and every metric equal a learner whose kept values are dropped
    before every batch (each leaving value computed again from the window, the path before), across a restore;
    the kept values are not checkpointed."""
    rng = random.Random(seed)
    kept, fresh = learner(task, metric_window=window), learner(task, metric_window=window)
    for batch, size in enumerate(sizes):
        rows = []
        for _ in range(size):
            i = len(rows) + 1000 * batch
            if task == "binary":
                y, p = rng.random() < 0.5, rng.choice([0.0, 1.0, 1e-17, rng.random()])
                rows.append((f"e{i}", {"x": 1.0, "c": "a"}, y, p >= 0.5, {"True": p, "False": 1 - p}, i))
            else:
                rows.append((f"e{i}", {"x": 1.0, "c": "a"}, rng.uniform(-5, 5), rng.uniform(-5, 5), None, i))
        fresh.__dict__.pop("_held", None)
        kept.learn_many(rows)
        fresh.learn_many(rows)
        assert kept.metrics() == fresh.metrics()
        assert kept.checkpoint(hmac_key=KEY) == fresh.checkpoint(hmac_key=KEY)
        for p, values in kept._held.items():  # a rolling mean's values, a rolling matrix's counts by batch
            counted = sum(n for n, _ in values) if kept._feeds[p][0] == "label" and task == "binary" else len(values)
            assert counted == len(kept._feeds[p][1].window)
        if batch == restore_after:
            kept, fresh = (OnlineLearner.restore(lr.checkpoint(hmac_key=KEY), hmac_key=KEY) for lr in (kept, fresh))
            assert "_held" not in kept.__dict__


two_keys = st.sampled_from([("False", "True"), ("True", "False"), ("1", "0"), ("a", "b"), ("True", "1"), ("yes", "x")])


@settings(max_examples=200, deadline=None)
@given(
    task=st.sampled_from(["binary", "multiclass"]),
    known=st.sampled_from([(True, False), ("a", "b"), (0, 1)]),
    kind=st.sampled_from([bool, int, str]),
    keys=two_keys,
    rows=st.lists(
        st.tuples(
            st.sampled_from([0, 0, 0, 1, 1, 1, 7]),  # a known class (by position) or 7
            st.sampled_from([True, False, 0, 1, 2, "a", "b", "no"]),
            st.one_of(*[st.floats(0, 1)] * 4, st.floats(allow_nan=True), st.integers(-1, 2), st.just("0.5")),
            st.floats(0, 1),
        ),
        min_size=1,
        max_size=10,
    ),
    swap=st.booleans(),
)
def test_the_served_columns_are_the_served_values_row_by_row(task, known, kind, keys, rows, swap) -> None:
    """The columns of the usual batch (predictions of one type, probabilities with the same two keys in the same
    order) hold what :meth:`OnlineLearner._served_known` gives row by row: the same values, the same dicts with
    their keys in the same order (a binary classifier's: their probability of True, all its log loss reads); any
    other batch is left to it (None)."""
    lr = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), task), task, classes=known)
    rows = (rows * 32)[: max(32, len(rows))]  # a batch of at least MIN_ARRAY_PAIRS rows: smaller ones go row by row
    predictions = [kind(p) if not (kind is int and isinstance(p, str)) else 1 for _, p, _, _ in rows]
    probabilities = [dict(zip(keys, (b, a) if swap else (a, b), strict=True)) for _, _, a, b in rows]
    targets = [known[t] if t < 2 else t for t, _, _, _ in rows]
    served = zip(targets, predictions, probabilities, strict=True)
    data = [(f"e{i}", {}, t, p, q, i) for i, (t, p, q) in enumerate(served)]
    try:
        expected: Any = lr._served_known(targets, data)
    except TypeError as exc:
        expected = repr(exc)
    try:
        columns = lr._served_columns(targets, data)
    except TypeError as exc:
        assert repr(exc) == expected
        return
    if columns is not None:
        if task == "binary":  # River's binary log loss reads the probability of True of each: kept as that float
            expected = [(t, p, q.get(True, 0.0) if q is not None else q) for t, p, q in expected]
        assert repr(list(zip(*columns, strict=True))) == repr(expected)
        return
    with contextlib.suppress(ValueError):  # keys that are classes, values that are numbers: the columns' batch
        assert expected is None or not ([lr.coerce(k) for k in keys] and all(type(a) is not str for _, _, a, _ in rows))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([True, False, 0, 1, "", "a", None]),
            st.one_of(
                st.dictionaries(st.sampled_from([True, False, "True"]), st.floats(allow_nan=True), max_size=2),
                st.dictionaries(st.just(True), st.integers(0, 1), min_size=1),
                st.floats(0, 1),
            ),
        ),
        max_size=30,
    )
)
def test_log_losses_on_arrays_are_rivers_bit_for_bit(pairs) -> None:
    """The log losses of a batch (on arrays when every prediction is a dict of floats) are River's ``_eval`` of
    each pair: the same floats, NaN where River gives NaN, infinities and the clamp included."""
    from driftline.models.learner import _log_losses

    assert repr(_log_losses(pairs)) == repr([metrics.LogLoss()._eval(*pair) for pair in pairs])


@settings(max_examples=30, deadline=None)
@given(
    window=st.integers(1, 30), sizes=st.lists(st.integers(1, 45), min_size=2, max_size=5), seed=st.integers(0, 2**16)
)
def test_a_restored_window_of_probability_dicts_goes_on_as_one_of_floats(window, sizes, seed) -> None:
    """A checkpoint from before the binary log loss kept the probability of True of each pair holds the dicts in its
    rolling window: learning on from it leaves the very metrics (and window values) learning on from floats does."""
    rng = random.Random(seed)
    batches = []
    for b, size in enumerate(sizes):
        batch = []
        for i in range(size):
            y, p = rng.random() < 0.5, rng.choice([0.0, 1.0, 1e-17, rng.random()])
            batch.append((f"e{b}-{i}", {"x": 1.0, "c": "a"}, y, p >= 0.5, {"False": 1 - p, "True": p}, b * 100 + i))
        batches.append(batch)
    floats, dicts = learner(metric_window=window), learner(metric_window=window)
    for lr in (floats, dicts):
        lr.learn_many(batches[0])
    rolling = dicts._metrics["logloss_rolling"]
    old = [((y, {True: p, False: 1 - p}), kw) for (y, p), kw in rolling.window]  # as the checkpoint held them
    rolling.window.clear()
    rolling.window.extend(old)
    dicts = OnlineLearner.restore(dicts.checkpoint(hmac_key=KEY), hmac_key=KEY)
    for batch in batches[1:]:
        floats.learn_many(batch)
        dicts.learn_many(batch)
        assert repr(floats.metrics()) == repr(dicts.metrics())
    theirs = dicts._metrics["logloss_rolling"].window
    assert [(y, p.get(True, 0.0) if isinstance(p, dict) else p) for (y, p), _ in theirs] == [
        pair for pair, _ in floats._metrics["logloss_rolling"].window
    ]


@settings(max_examples=150, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.booleans(), st.booleans())
        | st.tuples(st.sampled_from([True, False, 1, 0, 1.0, "a"]), st.sampled_from([True, False, 0, None])),
        max_size=80,
    ),
    bools=st.booleans(),
)
def test_pairs_are_tallied_as_a_counter_counts_them(pairs, bools) -> None:
    """Property: tally (four counts for pairs of bools, no tuple hashed) gives Counter's counts, any pairs: bools
    only (one class, one pair, many), or ints, floats and strings equal to them or not."""
    if bools:
        pairs = [(bool(y), bool(p)) for y, p in pairs]
    counted = tally(pairs)
    assert counted == collections.Counter(pairs)
    assert all(count > 0 for count in counted.values())


@settings(max_examples=60, deadline=None)
@given(
    task=st.sampled_from(["binary", "multiclass"]),
    window=st.integers(1, 30),
    sizes=st.lists(st.integers(1, 70), min_size=1, max_size=8),
    restore_after=st.integers(0, 8),
    drop_after=st.integers(0, 8),
    seed=st.integers(0, 2**16),
)
def test_rolling_confusion_matrices_reverting_by_the_batches_pairs_came_in_are_rivers(
    task, window, sizes, restore_after, drop_after, seed
) -> None:
    """Property: a rolling confusion matrix reverts the pairs that leave it from the counts of the batches they came
    in (kept beside it, not checkpointed; a batch that leaves in part, batches larger than the window, a restore, the
    kept counts dropped): both matrices hold, cell for cell, what River's ``update`` of each pair leaves, and the
    window is River's. Served predictions missing on some rows, one class only, a class first seen mid-stream."""
    rng = random.Random(seed)
    classes = [True, False] if task == "binary" else ["a", "b", "c"]
    one_class = rng.random() < 0.2
    lr = learner(task, metric_window=window)
    cumulative, rolling = metrics.ConfusionMatrix(), utils.Rolling(metrics.ConfusionMatrix, window_size=window)
    i = 0
    for batch, size in enumerate(sizes):
        rows = []
        for _ in range(size):
            pool = classes[:1] if one_class else classes if i > 40 or task == "binary" else classes[:2]
            y, served = rng.choice(pool), None if rng.random() < 0.1 else rng.choice(pool)
            rows.append((f"e{i}", {"x": rng.random(), "c": "a"}, y, served, None, i))
            if served is not None:
                cumulative.update(y, served)
                rolling.update(y, served)
            i += 1
        assert lr.learn_many(rows) == [True] * len(rows)
        for ours, theirs in zip((f[1] for f in lr._feeds[:2]), (cumulative, rolling), strict=True):
            assert_same_confusion(ours, theirs)
            assert list(getattr(ours, "window", [])) == list(getattr(theirs, "window", []))
        if batch == drop_after:
            lr.__dict__.pop("_held", None)
        if batch == restore_after:
            lr = OnlineLearner.restore(lr.checkpoint(hmac_key=KEY), hmac_key=KEY)


def test_a_binary_batch_with_the_probability_keys_in_either_order_keeps_the_probability_of_true() -> None:
    """A binary classifier's log loss reads the probability of True alone: a batch whose dicts hold the same two
    keys in either order takes the columns' path, with each row's probability of True, as row by row."""
    lr = OnlineLearner(build_model(FeatureSchema({"x": "numeric"}), "binary"), "binary", classes={True, False})
    data = []
    for i in range(40):
        p = i / 40
        probabilities = {"False": 1 - p, "True": p} if i % 3 else {"True": p, "False": 1 - p}
        data.append((f"e{i}", {}, i % 2 == 0, p > 0.5, probabilities, i))
    targets = [row[2] for row in data]
    columns = lr._served_columns(targets, data)
    assert columns is not None
    expected = [(t, p, q.get(True, 0.0)) for t, p, q in lr._served_known(targets, data)]
    assert list(zip(*columns, strict=True)) == expected
