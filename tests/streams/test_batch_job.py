"""`score_file` with an in-process model (no servers): chunking, CSV and Parquet, the side file, the drift summary."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from driftline.contract.settings import Settings
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.reference import ReferenceProfile
from driftline.models.version import ModelVersion
from driftline.streams.batch_job import BatchInputError, score_file
from driftline.streams.scoring_stage import LoadedModel

N = 600


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    model, schema, task = bootstrap_model(samples=500)
    return LoadedModel(ModelVersion("default", 1, None, 0, "", "", task, schema.to_dict()), model)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """N rows: the second half with the stream's covariate drift (salary x1.6); row 7 has a bad loan."""
    rows = [{"event_id": e["event_id"], **e["features"]} for e, _ in synthetic_stream(N, drift_at=N // 2)]
    frame = pd.DataFrame(rows).astype(object)
    frame.loc[7, "loan"] = "a lot"
    return frame


def test_chunking_and_format_do_not_change_the_output(loaded, frame, tmp_path: Path) -> None:
    csv_path, parquet_path = tmp_path / "in.csv", tmp_path / "in.parquet"
    frame.to_csv(csv_path, index=False)
    columns = {name: frame[name].tolist() for name in frame}
    columns["loan"][7] = float("nan")  # Parquet columns are typed: a NaN (not a null) is its bad value
    pq.write_table(pa.Table.from_pydict(columns), parquet_path)
    outputs = []
    for path, chunk_rows in ((csv_path, 10_000), (csv_path, 7), (parquet_path, 50)):
        out = tmp_path / f"{path.suffix[1:]}-{chunk_rows}.parquet"
        result = score_file(path, out, loaded, Settings(), chunk_rows=chunk_rows)
        assert (result.rows, result.scored, result.rejected) == (N, N - 1, 1)
        outputs.append(pd.read_parquet(out))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])
    pd.testing.assert_frame_equal(outputs[0], outputs[2])
    assert 7 not in outputs[0]["row"].tolist()
    [rejected] = [json.loads(line) for line in (tmp_path / "csv-7.rejected.jsonl").read_text().splitlines()]
    assert (rejected["row"], rejected["event_id"], rejected["stage"], rejected["error_class"]) == (
        7,
        frame.loc[7, "event_id"],
        "validate",
        "FeatureError",
    )
    assert rejected["reason"] == "feature 'loan' expects a number, got str"


def test_the_drift_summary_finds_the_shifted_feature_only(loaded, frame, tmp_path: Path) -> None:
    before = frame.iloc[: N // 2].drop(columns=["event_id"]).to_dict("records")
    reference = ReferenceProfile.from_rows(
        [{k: v for k, v in row.items() if not isinstance(v, str)} for row in before], loaded.schema
    )
    path = tmp_path / "in.csv"
    frame.to_csv(path, index=False)
    drift = score_file(path, tmp_path / "o.parquet", loaded, Settings(), reference=reference, chunk_rows=100).drift
    assert {d.feature for d in drift if d.drifted} == {"salary"}
    assert {d.rows for d in drift} == {N - 1}


def test_all_rows_rejected_still_writes_an_empty_output_and_bad_files_are_refused(loaded, tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("event_id,salary\na,x\nb,y\n")
    result = score_file(path, tmp_path / "o.parquet", loaded, Settings())
    assert (result.scored, result.rejected) == (0, 2)
    assert len(pd.read_parquet(tmp_path / "o.parquet")) == 0
    with pytest.raises(BatchInputError, match="expected a .csv or .parquet"):
        score_file(tmp_path / "in.json", tmp_path / "o.parquet", loaded, Settings())
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(BatchInputError, match="cannot read it"):
        score_file(broken, tmp_path / "o.parquet", loaded, Settings())
