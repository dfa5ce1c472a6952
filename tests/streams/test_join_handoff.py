"""The learner's hand-off as columns: join records decoded at once keep their float matrix, and learning and the
frozen model's predictions on it end exactly where the same records as plain feature dicts end."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import compose, linear_model, preprocessing, tree

from driftline.contract.labelled import rows
from driftline.contract.records import Label
from driftline.models import minibatch
from driftline.models.feature_rows import FeatureRows, FloatBlock
from driftline.models.features import FeatureSchema
from driftline.models.learner import OnlineLearner
from driftline.models.minibatch import learn_rows, predict_rows
from driftline.models.specs import build_model
from driftline.streams.join_codec import encode_record, layout_digest
from driftline.streams.join_store import JoinSlices
from driftline.streams.labelled_rows import blocks, learned_rows, pairs
from driftline.streams.learning_stage import JoinRecord, features_of
from driftline.streams.staged_learning import FrozenModel, learn_staged

NAMES = ("x", "z", "w")
SLICES = JoinSlices(ttl_ms=80_000)
#: A tree's pickle differs from run to run: it is compared by a prediction.
PROBE = {"x": 0.5, "z": -20.0, "w": 3.0}


def model_of(kind: str) -> tuple[Any, str]:
    """The Agrawal shape (selection, scaler, logistic head), a regression, a scaler without std, and a tree."""
    if kind == "regression":
        return build_model(FeatureSchema({"x": "numeric", "z": "numeric"}), "regression"), "regression"
    if kind == "no std":
        scaler = preprocessing.StandardScaler(with_std=False)
        return compose.Select("x", "w") | scaler | linear_model.LogisticRegression(), "binary"
    if kind == "tree":
        return compose.Select("x", "z") | preprocessing.StandardScaler() | tree.HoeffdingTreeClassifier(), "binary"
    return build_model(FeatureSchema({"x": "numeric", "z": "numeric", "w": "numeric"}), "binary"), "binary"


def records(data: st.DataObject, n: int) -> tuple[list[bytes], list[int], dict[int, tuple[str, ...]]]:
    """``n`` join records as a scorer writes them, with odd values (NaN, infinities, -0.0, huge) and odd records
    (a text feature, an unknown layout, a probability that is no pair) among them."""
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 3)) * np.array([1.0, 50.0, 1e6])
    whole = rng.random((n, 3)) < 0.3  # whole numbers 0-255: a byte each in the record
    values[whole] = rng.integers(0, 256, size=int(whole.sum()))
    odd = data.draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf, -0.0, 1e308, 5e-324]), max_size=4))
    for value in odd:
        values[rng.integers(n), rng.integers(3)] = value
    kinds = data.draw(st.lists(st.sampled_from(["text", "unknown", "proba"]), max_size=3))
    scores = rng.random(n).tolist()
    raws = []
    for i, row in enumerate(values.tolist()):
        proba = {"False": 1.0 - scores[i], "True": scores[i]}
        raws.append(encode_record(row, scores[i] > 0.5, proba, scores[i], 1, int(rng.integers(0, 10_000)), None, NAMES))
    for kind in kinds:
        i = int(rng.integers(n))
        if kind == "text":
            raws[i] = encode_record([1.0, "t", 2.0], True, None, 0.5, 1, 5, None, NAMES)
        elif kind == "unknown":
            raws[i] = encode_record([1.0, 2.0, 3.0], True, None, 0.5, 1, 5, None, ("a", "b", "c"))
        else:
            raws[i] = encode_record([1.0, 2.0, 3.0], 1, {"1": 0.5}, 0.5, 1, 5, None, NAMES)
    return raws, [2 + i % 2 for i in range(n)], {layout_digest(NAMES): NAMES}


def plain(record: Any) -> JoinRecord | None:
    """The same record with a fresh feature dict and no block: the dicts-only path."""
    if not isinstance(record, JoinRecord):
        return None
    r = record
    return JoinRecord(dict(r.x), r.prediction, r.probabilities, r.score, r.version, r.expires_ms, r.challenger)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_learning_on_the_decoded_matrix_ends_where_learning_on_the_dicts_ends(data: st.DataObject) -> None:
    """The same outcomes, frozen predictions, model, metrics and labelled rows (written from the matrix against one
    ``orjson.dumps`` a dict, read back as ``offline retrain`` reads them)."""
    n = data.draw(st.integers(1, 260))
    raws, ks, layouts = records(data, n)
    decoded = SLICES.decoded_many(raws, ks, layouts)
    kind = data.draw(st.sampled_from(["agrawal", "regression", "no std", "tree"]))
    one_class = data.draw(st.booleans())
    labels_rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    labels = []
    for i in range(n):
        event = f"e{labels_rng.integers(n)}" if labels_rng.random() < 0.05 else f"e{i}"  # duplicates
        y: Any = True if one_class else bool(labels_rng.random() < 0.5)
        if kind == "regression":
            y = float(labels_rng.normal())
        late = labels_rng.random() < 0.03
        ts = 10**9 if late else 1_000 + i
        labels.append(Label(event_id=event, label=y, ts=ts))
    missing = set(labels_rng.choice(n, size=data.draw(st.integers(0, 3)), replace=True).tolist()) if n else set()
    sizes = data.draw(st.lists(st.integers(1, 200), min_size=1, max_size=4))
    every = data.draw(st.sampled_from([7, 64, 1000]))
    got = []
    for variant in ("matrix", "dicts"):
        joins = [None if i in missing else decoded[i] if variant == "matrix" else plain(decoded[i]) for i in range(n)]
        joins = [j if isinstance(j, JoinRecord) else None for j in joins]
        model, task = model_of(kind)
        learner = OnlineLearner(model, task)
        frozen = FrozenModel(learner.model, learner.learned, every)
        start, outcomes = 0, []
        while start < n:
            size = sizes[len(outcomes) % len(sizes)]
            part = list(zip(labels, joins, strict=True))[start : start + size]
            outcome, staged = learn_staged(learner, part, frozen)
            learned = [(part[i][0], part[i][1], part[i][0].label) for i in outcome.learned_indices]
            kept = learned_rows(learned)  # the labelled stream's rows: as the matrix, or the dicts
            stored = [row for block in blocks(kept, 97) for row in rows(block)]  # as offline retrain reads them
            outcomes.append((outcome.learned_indices, outcome.rejected, outcome.messages, staged, stored, pairs(kept)))
            start += size
        state = pickle.dumps(learner.model) if kind != "tree" else repr(learner.model.predict_proba_one(PROBE))
        got.append((repr(outcomes), repr(learner.metrics()), state, learner.learned))
    assert got[0] == got[1]


def test_a_batch_decoded_at_once_hands_its_matrix_to_learning_and_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    """The usual batch (every record from the scorer, one layout) reaches learn_rows and predict_rows as its
    matrix: no dict is read back into an array (and the model ends where the dicts' path ends, bit for bit)."""
    rng = np.random.default_rng(3)
    values = rng.normal(size=(300, 3)).tolist()
    raws = [encode_record(v, True, {"False": 0.5, "True": 0.5}, 0.5, 1, 9, None, NAMES) for v in values]
    decoded = SLICES.decoded_many(raws, [1] * 300, {layout_digest(NAMES): NAMES})
    xs = features_of(decoded)  # type: ignore[arg-type]
    assert (
        type(xs) is FeatureRows
        and xs.matrix.tolist() == values
        and xs == [dict(zip(NAMES, v, strict=True)) for v in values]
    )
    ys = [v[0] > 0 for v in values]
    by_dicts, by_matrix = model_of("agrawal")[0], model_of("agrawal")[0]
    assert learn_rows(by_dicts, [dict(x) for x in xs], ys)
    predicted = predict_rows(by_dicts, [dict(x) for x in xs])
    monkeypatch.setattr(minibatch, "_rows", lambda *_: pytest.fail("the dicts were read back into an array"))
    assert learn_rows(by_matrix, xs, ys) and predict_rows(by_matrix, xs) == predicted
    assert pickle.dumps(by_matrix) == pickle.dumps(by_dicts)


def test_rows_of_several_blocks_or_none_are_plain_dicts() -> None:
    one, two = (FloatBlock(NAMES, np.ones((2, 3))) for _ in range(2))
    a, b = one.rows(), two.rows()
    mixed = [
        JoinRecord(a[0], True, None, 0.5, 1, 9, None, one, 0),
        JoinRecord(b[1], True, None, 0.5, 1, 9, None, two, 1),
    ]
    assert type(features_of(mixed)) is list and features_of(mixed) == [a[0], b[1]]
    assert type(features_of([*mixed[:1], JoinRecord({"x": 1.0}, True, None, 0.5, 1, 9)])) is list
    assert copy.copy(features_of(mixed[:1])) == [a[0]]


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["scorer", "text", "unknown", "cut"]),
            st.integers(-(2**60), 2**60),  # the event-time delta
            st.one_of(st.integers(0, 5), st.integers(-(2**70), 2**70)),  # the slice: a hostile one too
        ),
        min_size=1,
        max_size=30,
    )
)
def test_records_decoded_at_once_are_each_decoded_alone(rows: list[tuple[str, int, int]]) -> None:
    """JoinSlices.decoded_many against decoded, any delta and slice (expiries past an int64 included)."""
    layouts = {layout_digest(NAMES): NAMES}
    raws, ks = [], []
    for kind, delta, k in rows:
        values: list[Any] = [1.5, -0.0, 3.0] if kind != "text" else [1.5, "t", 3.0]
        names = ("p", "q", "r") if kind == "unknown" else NAMES
        raw = encode_record(values, False, {"False": 0.75, "True": 0.25}, 0.25, 2, delta, None, names)
        raws.append(raw[:-3] if kind == "cut" else raw)
        ks.append(k)
    many = SLICES.decoded_many(raws, ks, layouts)
    for (kind, delta, _), raw, k, got in zip(rows, raws, ks, many, strict=True):
        try:
            alone: object = SLICES.decoded(raw, k, layouts)
        except (KeyError, ValueError) as exc:
            alone = exc
        assert type(got) is type(alone)
        if isinstance(got, JoinRecord):
            assert got == alone and got.x == alone.x  # type: ignore[union-attr]
            # a text feature or a delta past the varints read at once: decoded alone, no matrix
            assert (got.block is not None) is (kind == "scorer" and -(2**55) <= delta < 2**55)
            if got.block is not None:
                assert got.block.matrix[got.row].tolist() == list(got.x.values()) == [1.5, -0.0, 3.0]
        else:
            assert got.args == alone.args  # type: ignore[attr-defined]
