"""Alert policy, false-alarm budget, deduplication and actions: pure logic, no services."""

from __future__ import annotations

import math

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from driftline.monitoring.actions import choose_action, default_actions, recommend_threshold, retrain_request
from driftline.monitoring.budget import FalseAlarmBudget, cusum_threshold, page_hinkley_threshold
from driftline.monitoring.dedup import Deduplicator, InMemoryDeduplicator
from driftline.monitoring.policy import AlertPolicy, DetectorResult, PolicyConfig
from driftline.streams.redis_dedup import RedisDeduplicator


def result(score: float, samples: int = 500, key: str = "data_drift:ks:x", resets: bool = False) -> DetectorResult:
    return DetectorResult(key, "data_drift", "ks", "x", score, 1.0, score, samples, resets=resets)


def test_budget_share_shrinks_with_more_detectors_and_more_frequent_tests() -> None:
    """Doubling the detectors or testing twice as often halves each test's level (Bonferroni)."""
    budget = FalseAlarmBudget(per_100k_events=1.0, correction="bonferroni")
    base = budget.alpha(detectors=10, events_per_test=250)
    assert budget.alpha(20, 250) == pytest.approx(base / 2)
    assert budget.alpha(10, 125) == pytest.approx(base / 2)


def test_sidak_level_is_never_below_bonferroni_and_keeps_the_family_rate() -> None:
    """Šidák: 1 - (1 - alpha)^k equals the family level exactly, Bonferroni is the conservative bound."""
    for k in (1, 7, 100):
        sidak = FalseAlarmBudget(correction="sidak").alpha(k, 250)
        bonferroni = FalseAlarmBudget(correction="bonferroni").alpha(k, 250)
        assert sidak >= bonferroni
        assert 1 - (1 - sidak) ** k == pytest.approx(1e-5 * 250)


def test_budget_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        FalseAlarmBudget(per_100k_events=0)
    with pytest.raises(ValueError):
        FalseAlarmBudget().alpha(0, 100)


def test_cusum_threshold_gives_at_least_the_requested_run_length_by_lordens_bound() -> None:
    assert math.exp(cusum_threshold(1e6)) == pytest.approx(1e6)


def test_page_hinkley_threshold_grows_with_the_run_length_it_must_reach() -> None:
    assert page_hinkley_threshold(1e3, 0.5) < page_hinkley_threshold(1e6, 0.5) < page_hinkley_threshold(1e9, 0.5)


def test_policy_alerts_once_for_a_persistent_drift_then_rearms_after_the_score_falls_back() -> None:
    """Hysteresis: scores 2, 3, 4 (persistent drift) alert once; 0.9 does not re-arm; 0.2 does."""
    policy = AlertPolicy(PolicyConfig(cooldown_events=0, cooldown_ms=0))
    fired = [policy.decide(result(s), events=i, ts_ms=i) for i, s in enumerate([2.0, 3.0, 4.0, 0.9, 1.5])]
    assert fired == ["warning", None, None, None, None]
    assert policy.decide(result(0.2), 10, 10) is None
    assert policy.decide(result(1.2), 11, 11) == "info"


def test_policy_severity_grows_with_how_far_past_the_threshold_the_score_is() -> None:
    policy = AlertPolicy(PolicyConfig(warning_score=1.5, critical_score=3.0))
    assert [policy.severity(s) for s in (1.0, 1.6, 3.5)] == ["info", "warning", "critical"]


def test_policy_ignores_results_from_too_few_samples() -> None:
    policy = AlertPolicy(PolicyConfig(min_samples=200, cooldown_events=0, cooldown_ms=0))
    assert policy.decide(result(9.0, samples=199), 0, 0) is None
    assert policy.decide(result(9.0, samples=200), 1, 1) == "critical"


def test_cooldown_holds_a_self_resetting_detector_back_in_events_and_in_time() -> None:
    """A detector that restarts itself (CUSUM) stays armed, so only the cooldown spaces its alerts."""
    policy = AlertPolicy(PolicyConfig(cooldown_events=100, cooldown_ms=1000))
    assert policy.decide(result(2.0, resets=True), events=0, ts_ms=0) == "warning"
    assert policy.decide(result(2.0, resets=True), events=50, ts_ms=5000) is None  # too few events
    assert policy.decide(result(2.0, resets=True), events=500, ts_ms=500) is None  # too early
    assert policy.decide(result(2.0, resets=True), events=500, ts_ms=5000) == "warning"


def test_policy_states_are_per_detector() -> None:
    policy = AlertPolicy(PolicyConfig(cooldown_events=0, cooldown_ms=0))
    assert policy.decide(result(2.0, key="a"), 0, 0) == "warning"
    assert policy.decide(result(2.0, key="b"), 0, 0) == "warning"
    assert policy.disarmed == {"a", "b"}


def test_in_memory_dedup_lets_the_first_claim_through_until_it_expires() -> None:
    dedup = InMemoryDeduplicator()
    assert isinstance(dedup, Deduplicator)
    assert [dedup.first("k", 100, t) for t in (0, 50, 99, 100, 150)] == [True, False, False, True, False]


class CountingRedis(redis.Redis):
    """A real client to a closed port (connection refused at once), counting the commands it tries."""

    def __init__(self) -> None:
        super().__init__(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
        self.tried = 0

    def evalsha(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        self.tried += 1
        return super().evalsha(*args, **kwargs)  # type: ignore[arg-type]


def test_redis_dedup_falls_back_to_local_dedup_counts_it_and_leaves_redis_alone_for_a_while() -> None:
    """No exception; the local fallback still suppresses the duplicate; Redis is retried only after retry_after."""
    now = [0.0]
    client = CountingRedis()
    dedup = RedisDeduplicator(client, retry_after=30, clock=lambda: now[0])
    assert dedup.first("m:data_drift:x:ks", 60_000, 0) is True
    assert dedup.first("m:data_drift:x:ks", 60_000, 10) is False
    assert (dedup.fallbacks, client.tried) == (2, 1)
    now[0] = 31.0
    assert dedup.first("m:data_drift:y:ks", 60_000, 20) is True
    assert (dedup.fallbacks, client.tried) == (3, 2)


def test_actions_follow_the_configuration_and_reject_unknown_ones() -> None:
    actions = {**default_actions(), "data_drift": "adjust_threshold"}
    assert choose_action("data_drift", actions) == "adjust_threshold"
    assert choose_action("performance", {}) == "none"
    with pytest.raises(ValueError):
        choose_action("data_drift", {"data_drift": "panic"})  # type: ignore[dict-item]


def test_retrain_request_is_deterministic_per_alert_and_covers_the_lookback() -> None:
    one = retrain_request("m", 2, "alert-1", "concept_drift", "cusum", ts_ms=10_000, lookback_ms=4_000)
    again = retrain_request("m", 2, "alert-1", "concept_drift", "cusum", ts_ms=10_000, lookback_ms=4_000)
    other = retrain_request("m", 2, "alert-2", "concept_drift", "cusum", ts_ms=10_000, lookback_ms=4_000)
    assert one.request_id == again.request_id != other.request_id
    assert one.since_ts == 6_000


def test_recommended_threshold_keeps_the_reference_positive_rate_on_shifted_scores() -> None:
    scores = np.random.default_rng(0).beta(5, 2, 10_000)  # scores drifted upwards
    threshold = recommend_threshold(scores, positive_rate=0.2)
    assert np.mean(scores >= threshold) == pytest.approx(0.2, abs=0.005)
