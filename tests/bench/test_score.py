"""`driftline bench score` on small files: both runs of the public command are measured (no timing asserted)."""

from __future__ import annotations

import pytest

from driftline.bench.score import BAD_EVERY, run

pytestmark = pytest.mark.integration


def test_bench_score_scores_both_files_and_measures_each_childs_peak_memory() -> None:
    result = run(rows=3 * BAD_EVERY)
    small, large = result["small"], result["large"]
    assert (large["rows"], large["scored"], large["rejected"]) == (3000, 2997, 3)
    assert (small["rows"], small["scored"], small["rejected"]) == (300, 300, 0)
    assert large["peak_rss_mib"] > 50 and small["peak_rss_mib"] > 50  # a Python process with pandas and River
    assert result["peak_rss_ratio_large_to_small"] == round(large["peak_rss_mib"] / small["peak_rss_mib"], 2)
