"""The labelled stream's rows packed into two script arguments: cut back, they are byte for byte one
``orjson.dumps`` a value (property test), in Python and in the real redis-server's script."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from driftline.contract import keys
from driftline.streams.connections import async_redis_client
from driftline.streams.labelled_rows import APPEND_PACKED, LabelJson, cut, packed

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
