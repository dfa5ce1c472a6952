"""Answered V2 requests reach the monitors and Kafka together after their answers, as if scored in one batch."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from driftline.streams.answered import AnsweredBatches, merge, rows_of
from driftline.streams.inference_protocol import parse_request
from driftline.streams.scoring_stage import ScoredBatch, model_names, score_records
from tests.streams.test_scoring_stage import LOADED, POLICY

NOW_MS = 1_700_000_000_000
ROWS = [{"salary": 40_000.0 + 9_000 * i, "age": 25.0 + i, "loan": 1_000.0 * i} for i in range(6)]


def scored(rows: list[dict], ids: list[str], loaded=LOADED) -> ScoredBatch:
    """One request of ``rows`` through the HTTP path's stage, as the API scores it."""
    body = {
        "inputs": [
            {"name": n, "shape": [len(rows)], "datatype": "FP64", "data": [r[n] for r in rows]} for n in rows[0]
        ],
        "parameters": {"event_id": ids},
    }
    request = parse_request(json.dumps(body).encode(), "default", NOW_MS)
    _, parsed = model_names(request.records, POLICY, NOW_MS)
    return score_records(request.records, parsed, lambda name: loaded, POLICY, now_ms=lambda: 5.0)


def test_requests_answered_one_by_one_are_emitted_as_one_batch_equal_to_scoring_their_rows_at_once():
    ids = [f"h{i}" for i in range(len(ROWS))]
    one_by_one = [scored([row], [event_id]) for row, event_id in zip(ROWS, ids, strict=True)]
    [merged] = merge(one_by_one)
    [at_once] = [scored(ROWS, ids)]
    got, want = merged.by_model["default"], at_once.by_model["default"]
    assert got.event_ids == want.event_ids == ids
    assert got.rows == want.rows and got.ts == want.ts
    assert (got.predictions, got.probabilities, got.scores) == (want.predictions, want.probabilities, want.scores)
    assert [key for key, _ in merged.predictions] == [key for key, _ in at_once.predictions]
    assert [json.loads(v)["probabilities"] for _, v in merged.predictions] == [
        json.loads(v)["probabilities"] for _, v in at_once.predictions
    ]
    assert rows_of(merged) == len(ROWS) and len(merged.latencies_ms) == len(ROWS)


def test_merged_batches_hold_at_most_max_rows_and_a_larger_request_stays_whole():
    batches = [scored(ROWS[:2], ["a", "b"]), scored(ROWS[2:3], ["c"]), scored(ROWS[3:6], ["d", "e", "f"])]
    assert [b.by_model["default"].event_ids for b in merge(batches, max_rows=2)] == [
        ["a", "b"],
        ["c"],
        ["d", "e", "f"],
    ]
    assert [rows_of(b) for b in merge(batches, max_rows=3)] == [3, 3]


def test_a_new_model_version_starts_a_new_batch_so_each_version_s_rows_stay_in_order():
    v4 = replace(LOADED, meta=replace(LOADED.meta, version=4))
    batches = [scored([ROWS[0]], ["a"]), scored([ROWS[1]], ["b"], v4), scored([ROWS[2]], ["c"], v4)]
    merged = merge(batches)
    assert [(b.by_model["default"].loaded.version, b.by_model["default"].event_ids) for b in merged] == [
        (3, ["a"]),
        (4, ["b", "c"]),
    ]


def test_batches_put_while_one_is_emitted_go_out_together_and_a_failed_emit_is_counted_not_raised():
    emitted: list[list[str]] = []
    failed: list[tuple[int, str]] = []
    now = [100.0]

    async def emit(batch: ScoredBatch) -> None:
        ids = batch.by_model["default"].event_ids
        if "boom" in ids:
            raise RuntimeError("Kafka said no")
        emitted.append(ids)

    async def scenario() -> None:
        answered = AnsweredBatches(
            emit, lambda rows, exc: failed.append((rows, str(exc))), linger=0.0, max_rows=3, clock=lambda: now[0]
        )
        answered.put(scored(ROWS[:2], ["a", "b"]))
        answered.put(scored([ROWS[2]], ["c"]))
        assert answered.full and answered.pending_rows == 3
        await asyncio.wait_for(answered.room(), 5)  # a request waits until the queued rows are emitted
        assert emitted == [["a", "b", "c"]] and not answered.full and answered.pending_rows == 0
        answered.put(scored([ROWS[3]], ["boom"]))
        await answered.close()
        assert answered.refusing and isinstance(answered.failure, RuntimeError)  # the API answers 503 for a second
        now[0] += 1.0
        assert not answered.refusing
        answered.put(scored([ROWS[4]], ["d"]))
        await answered.close()
        assert answered.pending_rows == 0

    asyncio.run(scenario())
    assert emitted == [["a", "b", "c"], ["d"]]
    assert failed == [(1, "Kafka said no")]
