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
