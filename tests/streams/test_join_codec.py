"""The join record's binary form: lossless for every value a scored event can hold, and small."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.streams.join_codec import (
    decode_many,
    decode_record,
    encode_batch,
    encode_record,
    float_blocks,
    layout_digest,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=20),
)
#: Lists are stored as JSON (orjson: 64-bit integers; an infinity inside one comes back as null, as JSON has none)
in_lists = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.text(),
)
outputs = st.one_of(scalars, st.lists(in_lists, max_size=4))


def same(a: object, b: object) -> bool:
    """Equal with the same type, and -0.0 told from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


@given(
    features=st.dictionaries(st.text(min_size=1, max_size=10), st.one_of(st.floats(allow_nan=False), st.text())),
    prediction=outputs,
    probabilities=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.floats(0, 1), max_size=3)),
    score=st.one_of(st.none(), st.floats(allow_nan=False)),
    version=st.integers(1, 2**40),
    delta=st.integers(-(2**50), 2**50),
    challenger=st.one_of(st.none(), st.lists(in_lists, max_size=4)),
)
def test_every_value_comes_back_with_its_type(features, prediction, probabilities, score, version, delta, challenger):
    names = tuple(features)
    raw = encode_record(list(features.values()), prediction, probabilities, score, version, delta, challenger, names)
    x, got_prediction, got_probabilities, got_score, got_version, got_delta, got_challenger = decode_record(
        raw, {layout_digest(names): names}
    )
    assert list(x) == list(names) and all(same(x[n], features[n]) for n in names)
    assert same(got_prediction, prediction) or got_prediction == prediction
    assert got_probabilities == probabilities and same(got_score, score) or got_score == score
    assert (got_version, got_delta, got_challenger) == (version, delta, challenger)


def test_binary_probabilities_served_by_the_scorer_cost_nothing_beside_the_score():
    names = ("x",)
    plain = encode_record([1.5], True, None, 0.7, 1, 0, None, names)
    pair = encode_record([1.5], True, {"False": 1.0 - 0.7, "True": 0.7}, 0.7, 1, 0, None, names)
    other = encode_record([1.5], True, {"False": 0.2, "True": 0.7}, 0.7, 1, 0, None, names)
    assert len(pair) == len(plain) < len(other)
    assert decode_record(other, {layout_digest(names): names})[2] == {"False": 0.2, "True": 0.7}


@given(st.lists(st.lists(st.floats(allow_nan=False), min_size=3, max_size=3), min_size=1, max_size=20))
def test_a_batch_packed_at_once_decodes_as_each_record_alone(rows):
    names = ("a", "b", "c")
    blocks = float_blocks(np.array(rows, dtype=float))
    for row, block in zip(rows, blocks, strict=True):
        alone = encode_record(row, None, None, None, 1, 0, None, names)
        assert encode_record(row, None, None, None, 1, 0, None, names, floats_block=block) == alone
        x = decode_record(alone, {layout_digest(names): names})[0]
        assert all(same(x[n], v) for n, v in zip(names, row, strict=True))


#: Scores as a scorer serves them, and the ones packed differently: whole numbers, exact in float32, not finite.
batch_scores = st.one_of(
    st.floats(0, 1),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 0.25, 3.0, -7.0, 2.0**60, float("inf"), float("-inf")]),
    st.floats(allow_nan=False),
)


@given(
    st.lists(
        st.tuples(
            st.lists(st.floats(allow_nan=False), min_size=3, max_size=3),
            st.one_of(st.booleans(), st.just(1), st.none()),
            batch_scores,
            st.sampled_from(["pair", "none", "other"]),
            st.one_of(st.integers(0, 10_000), st.integers(-(2**40), 2**40)),
        ),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 2**40),
)
def test_a_batch_encoded_at_once_is_each_record_encoded_alone(rows, version):
    names = ("a", "b", "c")
    matrix = np.array([row[0] for row in rows], dtype=float).reshape(len(rows), 3)
    predictions = [row[1] for row in rows]
    scores = [row[2] for row in rows]
    probabilities = [
        {"False": 1.0 - score, "True": score} if kind == "pair" else None if kind == "none" else {"True": score}
        for score, kind in zip(scores, [row[3] for row in rows], strict=True)
    ]
    deltas = [row[4] for row in rows]
    got = encode_batch(matrix, predictions, probabilities, scores, version, np.array(deltas), names)
    for i, row in enumerate(rows):
        alone = encode_record(row[0], predictions[i], probabilities[i], scores[i], version, deltas[i], None, names)
        assert got[i] == alone, i


def test_an_agrawal_event_as_the_scorer_serves_it_fits_in_64_bytes():
    """Redis keeps a hash of values up to 64 bytes as one compact listpack (hash-max-listpack-value)."""
    model, schema, _ = bootstrap_model()
    sizes = []
    for event, _ in synthetic_stream(2000):
        x = schema.prepare(event["features"])
        p = model.predict_proba_one(x)[True]
        slice_ms = 21 * 3600 * 1000  # the largest time in a slice (an eighth of the default label TTL)
        raw = encode_record(
            list(x.values()), p > 0.5, {"False": 1.0 - p, "True": p}, p, 100_000, slice_ms, None, list(x)
        )
        sizes.append(len(raw))
    assert max(sizes) <= 64, max(sizes)


@given(rows=st.lists(st.lists(st.floats(allow_nan=False), min_size=9, max_size=9), min_size=1, max_size=20))
def test_a_record_cut_short_is_an_unreadable_record_wherever_it_is_cut(rows):
    """The learner treats a ValueError as an unreadable record (absent); a record cut short anywhere is one,
    never a ``struct.error`` that would stop the batch."""
    names = tuple(f"f{i}" for i in range(9))
    for values in rows:
        raw = encode_record(values, True, None, 0.25, 3, 10, None, names)
        for end in range(1, len(raw)):
            try:
                decode_record(raw[:end], {layout_digest(names): names})
            except ValueError:
                continue
            raise AssertionError(f"{raw[:end]!r} decoded")


def decoded_alone(raw: bytes, layouts: dict[int, tuple[str, ...]]) -> object:
    try:
        return decode_record(raw, layouts)
    except (KeyError, ValueError) as exc:
        return exc


def same_decoded(a: object, b: object) -> bool:
    """Two outcomes of a decode: equal records value for value (types and the sign of zero too), or the same
    exception."""
    if isinstance(a, Exception) or isinstance(b, Exception):
        return type(a) is type(b) and a.args == b.args  # type: ignore[union-attr]
    assert isinstance(a, tuple) and isinstance(b, tuple)
    x, *rest = a
    y, *other = b
    return (
        list(x) == list(y)
        and all(same(x[k], y[k]) for k in x)
        and all(same(p, q) or (type(p) is type(q) and p == q) for p, q in zip(rest, other, strict=True))
    )


@given(
    st.lists(
        st.tuples(
            st.lists(
                st.one_of(st.floats(allow_nan=False), st.integers(0, 255).map(float), st.just(-0.0)),
                min_size=9,
                max_size=9,
            ),
            st.one_of(st.booleans(), st.none(), st.just(1)),
            batch_scores,
            st.sampled_from(["pair", "none", "other"]),
            st.integers(-(2**60), 2**60),
            st.one_of(st.integers(1, 300), st.integers(1, 2**62)),
            st.one_of(st.none(), st.just([2, True, None, 0.5])),
            st.sampled_from(["agrawal", "other", "unknown", "text"]),
            st.one_of(st.none(), st.integers(0, 80)),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_a_batch_decoded_at_once_is_each_record_decoded_alone(rows):
    """decode_many's NumPy path against decode_record: scorer-shaped records and every other kind beside them
    (tagged features, other probabilities, challengers, unknown layouts, long varints, records cut short)."""
    agrawal, other = tuple(f"f{i}" for i in range(9)), ("a", "b", "c", "d", "e", "f", "g", "h", "i")
    layouts = {layout_digest(agrawal): agrawal, layout_digest(other): other}
    raws = []
    for values, prediction, score, kind, delta, version, challenger, layout, cut in rows:
        names = agrawal if layout in ("agrawal", "text") else other if layout == "other" else ("z",) * 9
        features = [*values[:8], "text"] if layout == "text" else values
        proba = {"False": 1.0 - score, "True": score} if kind == "pair" else None if kind == "none" else {"1": score}
        raw = encode_record(features, prediction, proba, score, version, delta, challenger, names)
        raws.append(raw[:cut] if cut is not None else raw)
    got = decode_many(raws, layouts)
    for i, raw in enumerate(raws):
        assert same_decoded(got[i], decoded_alone(raw, layouts)), i
