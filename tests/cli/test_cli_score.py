"""`driftline score` on the real stack: a file's rows get the predictions a real worker gives the same rows published
as events (`driftline produce`'s reading of the CSV), and the rows the worker dead-letters are the rejected rows of
the side file, with the same reasons."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.models.bootstrap import synthetic_stream
from driftline.streams.producer import message_key, read_messages
from tests.harness import WorkerProcess, publish, read_until, settings_env

pytestmark = pytest.mark.integration


def rows_with_bad_ones(n: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        [{"event_id": e["event_id"], **e["features"]} for e, _ in synthetic_stream(n, drift_at=n // 2)]
    ).astype(object)
    frame.loc[3, "loan"] = "lots"  # not a number
    frame.loc[4, "salary"] = float("nan")  # written as "" in the CSV: missing, imputed
    frame.loc[5, "age"] = "inf"  # the stream refuses non-finite numbers
    frame.loc[6, "event_id"] = "x" * 300  # event ids are at most 256 characters
    return frame


def test_score_gives_the_stream_predictions_and_its_dead_letters_as_rejected_rows(settings, tmp_path: Path) -> None:
    n = 400
    csv_path = tmp_path / "batch.csv"
    rows_with_bad_ones(n).to_csv(csv_path, index=False)
    messages = list(read_messages(csv_path))
    worker = WorkerProcess(settings, tmp_path).start()
    try:
        asyncio.run(publish(settings, "events", [(message_key(m), m) for m in messages]))
        seen = asyncio.run(
            read_until(
                settings,
                ["predictions", "dead-letter"],
                lambda s: len(s["predictions"]) + len(s["dead-letter"]) >= n,
            )
        )
    finally:
        worker.stop()
    assert "Traceback" not in worker.log()
    stream = {p["event_id"]: p for p in (json.loads(r.value) for r in seen["predictions"])}
    letters = {json.loads(r.value)["event_id"]: dict(r.headers) for r in seen["dead-letter"]}
    assert len(stream) == n - 3 and len(letters) == 3

    out = tmp_path / "out" / "scored.parquet"
    env = settings_env(settings)
    result = CliRunner().invoke(
        main, ["score", "--data", str(csv_path), "--model", "default", "--out", str(out), "--chunk-rows", "64"], env=env
    )
    assert result.exit_code == 0, result.output
    assert f"scored {n} rows" in result.output and f"{n - 3} predictions" in result.output

    scored = pd.read_parquet(out)
    assert scored["row"].tolist() == [i for i in range(n) if i not in (3, 5, 6)]
    for row in scored.itertuples():
        want = stream[row.event_id]
        assert (row.prediction, row.model_version) == (want["prediction"], want["model_version"])
        assert dict(row.probabilities) == pytest.approx(want["probabilities"], rel=1e-12)
        assert row.score == pytest.approx(want["score"], rel=1e-12)

    rejected = [json.loads(line) for line in (tmp_path / "out" / "scored.rejected.jsonl").read_text().splitlines()]
    assert [r["row"] for r in rejected] == [3, 5, 6]
    for r in rejected:
        headers = letters[json.loads(r["record"])["event_id"]]
        assert (r["stage"], r["error_class"], r["reason"]) == (
            headers["dlq.stage"].decode(),
            headers["dlq.error.class"].decode(),
            headers["dlq.error.message"].decode(),
        )
    assert "feature 'loan' expects a number" in rejected[0]["reason"]

    # --model NAME@VERSION of an unknown version, a file that is not CSV or Parquet: one line, exit 1
    bad = CliRunner().invoke(
        main, ["score", "--data", str(csv_path), "--model", "default@9", "--out", str(out)], env=env
    )
    assert bad.exit_code == 1 and "version 9" in bad.output and "Traceback" not in bad.output
    text = tmp_path / "batch.txt"
    text.write_text("x\n")
    bad = CliRunner().invoke(main, ["score", "--data", str(text), "--out", str(out)], env=env)
    assert bad.exit_code == 1 and "expected a .csv or .parquet file" in bad.output


def test_score_without_a_reachable_redis_is_one_line_and_exit_2(tmp_path: Path) -> None:
    csv_path = tmp_path / "batch.csv"
    csv_path.write_text("x\n1\n")
    env = {"DRIFTLINE_REDIS_URL": "redis://127.0.0.1:1/0", "DRIFTLINE_MODEL_HMAC_KEY": "k"}
    result = CliRunner().invoke(main, ["score", "--data", str(csv_path), "--out", str(tmp_path / "o.parquet")], env=env)
    assert result.exit_code == 2 and "unreachable" in result.output and "Traceback" not in result.output
