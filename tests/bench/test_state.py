"""What Redis keeps as the stream grows: a small `driftline bench state` run on the real stack."""

from __future__ import annotations

from typing import Any

import pytest

from driftline.bench import state

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    """One small run: a version every 100 labels, 3 kept, 3,000 labelled events in the long phase."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DRIFTLINE_SNAPSHOT_EVERY_LABELS", "100")
        env.setenv("DRIFTLINE_KEEP_VERSIONS", "3")
        figures = state.run(events=1_000, warmup=200, labelled=3_000)
    print(f"\nstate: {figures}")
    return figures


def test_events_waiting_for_labels_cost_little_redis_memory_and_none_once_learned(result: dict[str, Any]) -> None:
    join = {phase: figures.get("join", 0) for phase, figures in result["redis_bytes_by_family"].items()}
    grown = join["waiting"] - join["baseline"]
    assert 30_000 < grown <= 150 * 1_000, "each waiting event holds a record of about 60 bytes (364 as a JSON key)"
    assert join["learned"] <= join["baseline"] + 0.05 * grown, "the records of learned labels are deleted"
    assert {"redis_bytes_per_waiting_event", "redis_bytes_after_learning_ratio"} <= result.keys()


def test_the_registry_keeps_keep_versions_besides_the_pinned_ones_however_many_snapshots(
    result: dict[str, Any],
) -> None:
    """4,200 labels make about 42 snapshots; the learner's pruning leaves 3 besides the bootstrap version (pinned)
    and those it stands on, at every mark; the figures of the worker process are there at each mark."""
    assert result["keep_versions"] == 3 and result["pinned_versions"] == 1
    assert [m["events"] for m in result["marks"]] == [30, 300, 3_000]
    assert all(m["versions_kept"] <= 3 + 1 + 1 for m in result["marks"]), result["marks"]
    marks = result["marks"]
    assert all(m["worker_rss_mib"] > 50 and 0 < m["reload_check_min_ms"] <= m["reload_check_ms"] for m in marks)
    assert [m["reload_check_round_trips"] for m in result["marks"]] == [5, 5, 5], "pointers, version, metadata"
    assert result["rss_ratio_1m_100k"] > 0
    assert result["reload_check_ratio_1m_10k"] > 0 and result["reload_check_median_ratio_1m_10k"] > 0


def test_the_label_backlog_is_learned_by_the_live_worker_and_timed(result: dict[str, Any]) -> None:
    """The 1,000 labels published while the worker was paused are all learned after it resumes (the run waits for
    every one), and the learner's rate and CPU per label are figures of that backlog."""
    assert result["learn_backlog_labels"] == 1_000
    assert result["learn_labels_per_s"] > 0 and result["learn_labels_per_s_from_resume"] > 0
    assert result["learn_cpu_us_per_label"] > 0 and result["labels_published_per_s"] > 0


def test_used_memory_is_read_after_an_append_only_file_rewrite_not_during_it(tmp_path) -> None:
    """While Redis rewrites its append-only file it buffers each write for the rewrite in 10 MB blocks, counted in
    ``used_memory``: a reading then is 10 MB high (two idle runs of the bench read 1.26 after learning). Here the
    rewrite is made slow (``rdb-key-save-delay``: 20 ms a key, 50 keys: 1 s) so that it surely runs while read."""
    import redis

    from driftline.embedded.stack import REDIS_USER, start_redis

    server = start_redis(
        tmp_path,
        "pw",
        key_prefix="",
        extra_commands=("bgrewriteaof", "mset", "info"),
        extra_config=("rdb-key-save-delay 20000",),
    )
    client = redis.Redis(port=server.port, username=REDIS_USER, password="pw")
    try:
        client.mset({f"k{i}": "v" * 1_000 for i in range(50)})
        before = state.used_memory(client)
        client.bgrewriteaof()
        grown = 0
        for i in range(200):  # writes during the rewrite (2 MB at most), buffered for it: a reading carries a block
            client.set(f"during{i}", "w" * 10_000)
            during = client.info()
            if not during["aof_rewrite_in_progress"]:
                break
            grown = max(grown, during["used_memory"] - before)
            if grown > 10_000_000:
                break
        assert grown > 10_000_000, "a reading during the rewrite counts its 10 MB buffer"
        after = state.used_memory(client)
        assert client.info()["aof_rewrite_in_progress"] == 0
        assert after < before + 3_000_000, (before, after)  # the 2 MB written at most, no block
    finally:
        client.close()
        server.stop()
