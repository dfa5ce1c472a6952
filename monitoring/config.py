"""Settings of a :class:`driftline.monitoring.monitor.Monitor`: windows, budget, policy, detectors on/off, actions.

Examples
--------
>>> config = MonitorConfig(false_alarms_per_100k=0.5, streaming_detectors=("adwin",))
>>> config.policy_config().cooldown_ms, config.budget().rate
(60000, 5e-06)
>>> config.actions["concept_drift"]
'retrain'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from driftline.contract.records import AlertKind
from driftline.contract.settings import AlertAction
from driftline.monitoring.actions import default_actions
from driftline.monitoring.budget import Correction, FalseAlarmBudget
from driftline.monitoring.concept import ErrorDetectorName
from driftline.monitoring.policy import PolicyConfig
from driftline.monitoring.streaming import StreamingName


@dataclass(frozen=True)
class MonitorConfig:
    """Settings of a :class:`Monitor` (window sizes, policy, budget, detectors on/off, actions per kind)."""

    #: Events per sliding window of the windowed tests, and how often (in events) they run.
    window: int = 500
    hop: int = 250
    #: Events learnt as the reference when no reference profile is given.
    reference_events: int = 2000
    #: Prediction drift reference (see driftline.monitoring.families.PredictionOutput): "model" (the served
    #: version's outputs on a sample of ``reference_inputs`` reference inputs, scored again for every version, so
    #: a model that keeps learning does not flag its own learning), "trailing" (a period trailing the window by
    #: ``prediction_lag`` events) or "profile" (the reference profile's prediction, fixed: static models).
    prediction_reference: Literal["model", "trailing", "profile"] = "model"
    reference_inputs: int = 500
    prediction_lag: int = 2000
    #: Against the trailing reference, prediction drift also needs an effect this large: a model that keeps
    #: learning moves its own output distribution by up to KS 0.18 / PSI 0.20 over 2,000 events on stationary
    #: streams (measured on the four River generators), which is learning, not drift.
    prediction_min_effect: dict[str, float] = field(default_factory=lambda: {"psi": 0.25, "ks": 0.25, "chi2": 0.1})
    #: Fleet-wide false alarms per 100,000 events, and how per-test levels are corrected for their number.
    false_alarms_per_100k: float = 1.0
    correction: Correction = "sidak"
    #: Alert policy: minimum samples, severity levels, hysteresis, cooldown (events and seconds).
    min_samples: int = 200
    warning_score: float = 1.5
    critical_score: float = 3.0
    rearm_score: float = 0.5
    cooldown_events: int = 5_000
    cooldown_seconds: float = 60.0
    #: River streaming detectors on block means: which, on which streams (None: every numeric feature; add
    #: "prediction" to watch the score too), and block sizes (KSWIN's own, larger: each update runs a KS test).
    streaming_detectors: tuple[StreamingName, ...] = ()
    streaming_features: tuple[str, ...] | None = None
    streaming_block: int = 250
    kswin_block: int = 1000
    #: Detector families the monitor runs, by registered name (driftline.monitoring.families), in this order.
    detectors: tuple[str, ...] = ("data_drift", "data_quality", "prediction_drift", "performance", "concept_drift")
    #: Error-stream (concept drift) detectors; those that do not fit the task are skipped.
    error_detectors: tuple[ErrorDetectorName, ...] = ("cusum", "adwin", "ddm", "eddm", "page_hinkley")
    error_grace: int = 1000
    #: Label-free estimate and realised metric: window and the smallest estimated drop that alerts.
    performance_window: int = 1000
    performance_tolerance: float = 0.05
    #: CBPE's calibrator is fitted again when another version shows up, at most once per this many labels (a
    #: learner registers a version every 1,000 labels by default; a refit costs it ~3 ms). Refitting less often
    #: lets the estimate lag a learning model: on the drift bench's stream the accuracy error per window was
    #: 0.0116 at 1,000, 0.0167 at 2,000 and 0.028 at 10,000 (NannyML's CBPE: 0.0215).
    calibration_every: int = 1_000
    #: Smallest excess over the reference rate a data-quality check alerts at.
    quality_min_excess: float = 0.01
    #: Action taken per alert kind.
    actions: dict[AlertKind, AlertAction] = field(default_factory=default_actions)
    #: Event timestamps remembered to measure label lag.
    max_tracked_events: int = 200_000

    def policy_config(self) -> PolicyConfig:
        return PolicyConfig(
            min_samples=self.min_samples,
            warning_score=self.warning_score,
            critical_score=self.critical_score,
            rearm_score=self.rearm_score,
            cooldown_events=self.cooldown_events,
            cooldown_ms=int(self.cooldown_seconds * 1000),
        )

    def budget(self) -> FalseAlarmBudget:
        return FalseAlarmBudget(self.false_alarms_per_100k, self.correction)
