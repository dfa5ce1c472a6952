"""A file's rows become the events `driftline produce` would publish for them."""

from __future__ import annotations

import csv
import io
import json

import orjson
import pandas as pd

from driftline.streams.file_scoring import chunk_records, csv_columns
from driftline.streams.producer import csv_row_to_event

CSV = """event_id,ts,x,c,n
a,5,1.5,red,3
b,,,7,-2
c,2026-01-01T00:00:00Z, 4 ,1.0,inf
d,9,1e3,True,nan
"""


def test_csv_rows_become_the_events_driftline_produce_publishes() -> None:
    cells = pd.read_csv(io.StringIO(CSV), dtype=str, keep_default_na=False, na_filter=False)
    records = chunk_records(csv_columns(cells), first_row=0, model="m", default_ts=99)
    for record, row in zip(records, csv.DictReader(io.StringIO(CSV)), strict=True):
        want = csv_row_to_event(row, 99)
        # json, not orjson: NaN and Infinity are written as such (the stage refuses them as the stream does)
        assert json.dumps(json.loads(record.value), sort_keys=True) == json.dumps(
            {**want, "model": "m"}, sort_keys=True
        )
        assert record.key == want["event_id"].encode()
    assert [r.offset for r in records] == [0, 1, 2, 3]


def test_rows_without_event_id_or_ts_get_the_row_number_and_the_default_time() -> None:
    [record] = chunk_records({"x": [1.0]}, first_row=41, model="m", default_ts=7)
    assert orjson.loads(record.value) == {"event_id": "row-41", "ts": 7, "model": "m", "features": {"x": 1.0}}
