"""The labelled stream's blocks: rows written as blocks read back as the rows one entry a row gave (features, labels,
order: property test), old one-row entries still read back beside blocks, and the cap in rows holds in the real
redis-server."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from driftline.contract import keys, labelled
from driftline.contract.labelled import read_rows
from driftline.models.feature_rows import FloatBlock
from driftline.offline.retrain import labelled_frame, read_labelled
from driftline.streams.connections import async_redis_client
from driftline.streams.labelled_rows import MatrixRows, blocks, chunks, count, pairs, queue
from driftline.streams.learning_stage import JoinRecord

TRICKY = st.sampled_from(["},{", "],[", "}", "{", ",", "\n", '"', "\\", "é", "},{\n", ""])
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.none(),
    st.lists(TRICKY, max_size=4).map("".join),
    st.text(max_size=6),
)
LABELS = st.one_of(st.booleans(), st.integers(-5, 5), st.lists(TRICKY, max_size=3).map("".join), st.floats(-1, 1))
ROWS = st.lists(
    st.tuples(
        st.dictionaries(st.one_of(st.text(max_size=4), st.lists(TRICKY, max_size=2).map("".join)), VALUES, max_size=6),
        LABELS,
    ),
    min_size=1,
    max_size=30,
)
FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e308, 5e-324, 1e16, 1e-7, 123456789.0, 0.1]),
)
NAMES = st.lists(
    st.one_of(
        st.text(max_size=4),
        st.lists(st.sampled_from(["%", "%s", "},{", "],[", '"', "\\", "é", ":", ","]), max_size=3).map("".join),
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
            ys = draw(st.lists(LABELS, min_size=len(rows), max_size=len(rows)))
            out.append(MatrixRows(block, rows, ys))
        else:
            out += draw(ROWS)
    return out


def one_entry_a_row(rows) -> list[dict[bytes, bytes]]:
    """The entries the learner wrote before blocks, one a row: ``x`` one dumps of the dict, or of the matrix row
    beside ``names``."""
    out = []
    for row in rows:
        if type(row) is MatrixRows:
            names = orjson.dumps(row.block.names)
            for x, y in zip(row.matrix().tolist(), row.ys, strict=True):
                out.append({b"x": orjson.dumps(x), b"y": orjson.dumps(y), b"names": names})
        else:
            out.append({b"x": orjson.dumps(row[0]), b"y": orjson.dumps(row[1])})
    return out


def stored(fields: dict[bytes, object]) -> dict[bytes, bytes]:
    """``fields`` as Redis gives them back (every value bytes)."""
    return {k: v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


@given(learned(), st.integers(1, 40))
@examples(max_examples=300)
def test_rows_written_as_blocks_read_back_as_the_rows_one_entry_a_row_gave(rows, size):
    """Blocks of at most ``size`` rows of one layout (matrix rows beside their names, NaN and infinities null, -0.0,
    names and text with '%', '},{', '],[', quotes; mixed layouts; one row; a block size boundary) read back as the
    same features and labels, in the same order, as the one-row entries of before."""
    want = [row for fields in one_entry_a_row(rows) for row in labelled.rows(fields)]
    assert want == [(orjson.loads(orjson.dumps(x)), orjson.loads(orjson.dumps(y))) for x, y in pairs(rows)]
    parts = list(chunks(rows, size))
    assert all(count(part) <= size for part in parts) and sum(map(count, parts)) == count(rows) == len(want)
    written = [stored(fields) for fields in blocks(rows, size)]
    assert all(int(f[labelled.N]) <= size for f in written) and len(written) <= len(parts) * len(rows)
    assert [row for fields in written for row in labelled.rows(fields)] == want
    assert sum(map(labelled.size, written)) == len(want)


def write(settings, batches, cap: int, size: int) -> list[int]:
    """Append each batch of ``batches`` as a checkpoint does (cap, then its blocks, one transaction); the rows the
    stream holds after each, as the script counted them."""
    stream = keys.labelled(settings.redis_prefix, settings.model_name)
    counter = keys.labelled_rows(settings.redis_prefix, settings.model_name)

    async def run() -> list[int]:
        client = async_redis_client(settings, settings.redis_url)
        held = []
        for rows in batches:
            async with client.pipeline(transaction=True) as pipe:
                queue(pipe, stream, counter, rows, cap, size)
                held.append((await pipe.execute())[0])
        await client.aclose()
        return held

    return asyncio.run(run())


@pytest.mark.integration
def test_the_stream_keeps_the_newest_rows_within_the_cap_and_reads_back_whole(settings, redis_client):
    """Checkpoints of 1 to 300 rows in blocks of at most 40, cap 500: once 500 rows were written the stream holds
    at least 500 and fewer than 540 (the oldest block dropped only whole), the counter says how many, and they are
    the newest rows, in order; ``read_rows`` with a limit takes the newest rows of a straddling block."""
    rng = np.random.default_rng(7)
    block = FloatBlock(("a", "b"), rng.normal(size=(300, 2)))
    batches, every, written = [], [], 0
    for i in range(40):
        n = int(rng.integers(1, 300))
        if i % 3 == 0:
            batch = [({"a": float(written + j), "t": "x},{y"}, j % 2 == 0) for j in range(n)]
        else:
            batch = [MatrixRows(block, list(range(n)), [written + j for j in range(n)])]
        batches.append(batch)
        every += pairs(batch)
        written += n
    held = write(settings, batches, cap=500, size=40)
    stream = keys.labelled(settings.redis_prefix, settings.model_name)
    rows = read_rows(redis_client, stream)
    want = [(orjson.loads(orjson.dumps(x)), y) for x, y in every]
    assert 500 <= len(rows) < 540 and rows == want[len(want) - len(rows) :]
    counter = keys.labelled_rows(settings.redis_prefix, settings.model_name)
    assert held[-1] == len(rows) == int(redis_client.get(counter))
    totals = np.cumsum([count(b) for b in batches])
    assert all(h == t or 500 <= h < 540 for h, t in zip(held, totals, strict=True)), (held, totals)
    assert read_rows(redis_client, stream, max_rows=77) == want[-77:]
    assert read_rows(redis_client, stream, max_rows=10**6) == rows


@pytest.mark.integration
def test_old_one_row_entries_and_blocks_read_back_as_one_frame_and_are_recounted(settings, redis_client):
    """A deployment's stream holds one-row entries (both forms) written before blocks: blocks follow them, a missing
    counter is recounted from them (XLEN), the cap drops the old entries first, and ``offline retrain`` reads
    the old rows and the blocks as one frame, the one the one-row entries alone would give."""
    names = ("salary", "age", "odd %s},{")
    block = FloatBlock(names, np.array([[float(i), 30.0 + i, [np.nan, np.inf, -0.0][i % 3]] for i in range(100)]))
    old = [MatrixRows(block, [i], [i % 2 == 0]) if i % 2 else ({"salary": float(i)}, i % 2 == 0) for i in range(60)]
    stream = keys.labelled(settings.redis_prefix, settings.model_name)
    for fields in one_entry_a_row(old):
        redis_client.xadd(stream, fields)
    new = [MatrixRows(block, list(range(60, 100)), [i % 2 == 0 for i in range(60, 100)]), ({"age": 1.0}, "z")]
    assert write(settings, [new], cap=80, size=16) == [80], "60 old rows recounted, 41 new, 21 old ones dropped"
    want = [*pairs(old), *pairs(new)][-80:]
    frame = read_labelled(redis_client, settings.redis_prefix, settings.model_name, 0, 1000)
    assert frame.equals(labelled_frame([(orjson.loads(orjson.dumps(x)), y) for x, y in want])), frame
    assert [int(f.get(b"n", b"1")) for _, f in redis_client.xrange(stream)] == [1] * 39 + [16, 16, 8, 1]
    redis_client.delete(keys.labelled_rows(settings.redis_prefix, settings.model_name))
    assert write(settings, [[({"age": 2.0}, 1)]], cap=80, size=16) == [80], "a deleted counter: blocks recounted"
    assert len(read_rows(redis_client, stream)) == 80
    redis_client.set(keys.labelled_rows(settings.redis_prefix, settings.model_name), "junk")
    assert write(settings, [[({"age": 3.0}, 1)]], cap=80, size=16) == [80], "a counter that is no number: recounted"


def test_a_join_record_is_true_so_all_finds_a_missing_one():
    """learn_staged and _joined_rows find a missing record with ``all(joins)`` (``None in joins`` called each
    record's ``__eq__``): a record, whatever it holds, is true."""
    record = JoinRecord({}, False, None, 0.0, 0, 0)
    assert (
        all([record, record])
        and not all([record, None])
        and bool(JoinRecord.of_rows([0], [0.0], [0], [0], FloatBlock(("a",), np.zeros((1, 1))))[0])
    )
