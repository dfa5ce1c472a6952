"""The labelled stream's rows packed into two script arguments: cut back, they are byte for byte one
``orjson.dumps`` a value (property test), in Python and in the real redis-server's script."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from driftline.contract import keys
from driftline.contract.labelled import features
from driftline.models.feature_rows import FloatBlock
from driftline.offline.retrain import labelled_frame, read_labelled
from driftline.streams.connections import async_redis_client
from driftline.streams.labelled_rows import (
    APPEND_PACKED,
    LabelJson,
    MatrixRows,
    appends,
    chunks,
    count,
    cut,
    entries,
    packed,
    pairs,
)
from driftline.streams.learning_stage import JoinRecord

TRICKY = st.sampled_from(["},{", "}", "{", ",", "\n", '"', "\\", "é", "},{\n", ""])
VALUES = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.none(),
    st.lists(TRICKY, max_size=4).map("".join),
    st.text(max_size=6),
)
ROWS = st.lists(
    st.tuples(
        st.dictionaries(st.one_of(st.text(max_size=4), st.lists(TRICKY, max_size=2).map("".join)), VALUES, max_size=6),
        st.one_of(st.booleans(), st.integers(-5, 5), st.lists(TRICKY, max_size=3).map("".join), st.floats(-1, 1)),
    ),
    min_size=1,
    max_size=30,
)


def plain(rows):
    return [(orjson.dumps(x), orjson.dumps(y)) for x, y in rows]


@given(ROWS)
@examples(max_examples=300)
def test_packed_rows_cut_back_are_one_dumps_a_value_and_only_separators_are_cut(rows):
    payload = packed(rows, LabelJson())
    strings = [v for x, _ in rows for v in (*x, *x.values()) if isinstance(v, str)]
    if not any("},{" in s for s in strings):
        assert payload is not None, "flat rows whose strings hold no '},{' are always packed"
    if payload is not None:
        assert cut(*payload, len(rows)) == plain(rows)


FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, 5e-324, 1e16, 1e-7, 123456789.0, 0.1]),
)
NAMES = st.lists(
    st.one_of(
        st.text(max_size=4),
        st.lists(st.sampled_from(["%", "%s", "},{", '"', "\\", "é", ":", ","]), max_size=3).map("".join),
    ),
    max_size=5,
    unique=True,
).map(tuple)


@st.composite
def learned(draw):
    """Rows as the learner keeps them: MatrixRows of a few blocks (any names, any floats) between plain rows."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.booleans()):
            names = draw(NAMES)
            n = draw(st.integers(1, 12))
            values = draw(st.lists(FLOATS, min_size=n * len(names), max_size=n * len(names)))
            block = FloatBlock(names, np.array(values, dtype=np.float64).reshape(n, len(names)))
            rows = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=10))
            ys = draw(
                st.lists(
                    st.one_of(st.booleans(), st.integers(-3, 3), st.text(max_size=3)),
                    min_size=len(rows),
                    max_size=len(rows),
                )
            )
            out.append(MatrixRows(block, rows, ys))
        else:
            out += draw(ROWS)
    return out


@given(learned(), st.integers(1, 40))
@examples(max_examples=300)
def test_rows_kept_as_their_matrix_read_back_as_their_dicts_in_order(rows, size):
    """Written in calls of at most ``size`` rows (matrix rows as arrays beside their names, NaN and infinities
    null, -0.0, names with '%', '},{', quotes; the others as one dumps a value), the entries read back as each row's
    dict and label, in order; plain rows are byte for byte one ``orjson.dumps`` a value."""
    want = [(orjson.loads(orjson.dumps(x)), orjson.loads(orjson.dumps(y))) for x, y in pairs(rows)]
    parts = list(chunks(rows, size))
    assert all(count(part) <= size for part in parts) and sum(map(count, parts)) == count(rows) == len(want)
    calls = list(appends(rows, LabelJson(), size))
    got = [e for script, args in calls for e in entries(script, args)]
    assert [(features(e), orjson.loads(e[b"y"])) for e in got] == want
    plain_rows = [e for e in got if b"names" not in e]
    assert [(e[b"x"], e[b"y"]) for e in plain_rows] == plain([r for r in rows if type(r) is not MatrixRows])


@pytest.mark.integration
def test_the_script_appends_the_same_entries_as_one_dumps_a_value(settings, redis_client):
    rows = [({"a": float(i), "c": "x,{y}\n"}, ["a\nb", True, 3, "", 0.25][i % 5]) for i in range(50)]
    rows += [({}, False), ({"b": None, "z": "é"}, "c")]
    payload = packed(rows, LabelJson())
    assert payload is not None
    stream = keys.labelled(settings.redis_prefix, settings.model_name)

    async def run() -> None:
        client = async_redis_client(settings, settings.redis_url)
        assert await client.eval(APPEND_PACKED, 1, stream, 1000, *payload, len(rows)) == len(rows)
        await client.aclose()

    asyncio.run(run())
    entries = redis_client.xrevrange(stream)[::-1]
    assert [(f[b"x"], f[b"y"]) for _, f in entries] == plain(rows)


@pytest.mark.integration
def test_old_entries_new_entries_and_both_mixed_read_back_as_the_same_frame(settings, redis_client):
    """Entries written before the matrix form (one dumps a value), matrix rows, and both mixed in one stream:
    ``offline retrain`` reads each row's features and label (the frame the object form alone would give)."""
    names = ("salary", "age", "odd %s},{")
    block = FloatBlock(names, np.array([[float(i), 30.0 + i, [np.nan, np.inf, -0.0][i % 3]] for i in range(60)]))
    old = [
        ({"salary": float(i), "age": 30.0 + i, "odd %s},{": [None, None, -0.0][i % 3]}, i % 2 == 0) for i in range(60)
    ]
    rows = [old[0], MatrixRows(block, list(range(1, 40)), [i % 2 == 0 for i in range(1, 40)]), old[40], old[41]]
    rows.append(MatrixRows(block, list(range(42, 60)), [i % 2 == 0 for i in range(42, 60)]))
    stream = keys.labelled(settings.redis_prefix, settings.model_name)

    async def run() -> None:
        client = async_redis_client(settings, settings.redis_url)
        for script, args in appends(rows, LabelJson(), 25):
            await client.eval(script, 1, stream, 1000, *args)
        await client.aclose()

    asyncio.run(run())
    frame = read_labelled(redis_client, settings.redis_prefix, settings.model_name, 0, 1000)
    want = labelled_frame([{b"x": orjson.dumps(x), b"y": orjson.dumps(y)} for x, y in old])
    assert frame.equals(want), (frame, want)
    assert {tuple(sorted(f)) for _, f in redis_client.xrevrange(stream)} == {(b"x", b"y"), (b"names", b"x", b"y")}


@given(
    st.one_of(
        st.lists(st.booleans(), max_size=30),
        st.lists(st.integers(-3, 3), max_size=30),
        st.lists(st.sampled_from(["a", "b\n", "", "é"]), max_size=30),
        st.lists(st.one_of(st.booleans(), st.integers(-2, 2), st.floats(), st.text(max_size=2)), max_size=30),
    )
)
@examples(max_examples=300)
def test_labels_joined_at_once_are_each_labels_json_joined(ys):
    """One kind of label looked up once a distinct value gives each label's own JSON (True and 1, 0.0 and -0.0
    apart)."""
    assert LabelJson().joined(ys) == b"\n".join(map(LabelJson(), ys)) == b"\n".join(map(orjson.dumps, ys))


def test_a_join_record_is_true_so_all_finds_a_missing_one():
    """learn_staged and _joined_rows find a missing record with ``all(joins)`` (``None in joins`` called each
    record's ``__eq__``): a record, whatever it holds, is true."""
    record = JoinRecord({}, False, None, 0.0, 0, 0)
    assert all([record, record]) and not all([record, None]) and bool(JoinRecord.of_row(0, {}, 0, 0, 0, None, 0))
