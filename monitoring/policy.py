"""Alert policy: which raw detector results become alerts, and how severe they are.

Pure logic, no I/O. A detector reports a :class:`DetectorResult` each time it evaluates; its ``score`` is the
evidence relative to the detector's (budget-corrected) threshold, so ``score >= 1`` means "past threshold".
:class:`AlertPolicy` then applies, per detector:

* **minimum samples**: results computed from fewer samples never alert;
* **severity** from how far past the threshold the score is (``info`` < ``warning_score`` <= ``warning`` <
  ``critical_score`` <= ``critical``), unless the detector fixes one (detectors with a yes/no output);
* **hysteresis**: after an alert the detector is disarmed and re-armed only once its score falls below
  ``rearm_score`` (a persistent drift alerts once, not at every window); detectors that restart themselves
  after a detection (``resets``) stay armed;
* **cooldown**: an armed detector does not alert again within ``cooldown_events`` events *and*
  ``cooldown_ms`` milliseconds of its previous alert.

Examples
--------
>>> policy = AlertPolicy(PolicyConfig(min_samples=100, cooldown_events=0, cooldown_ms=0))
>>> def result(score, samples=500):
...     return DetectorResult("data_drift:ks:x", "data_drift", "ks", "x", score / 10, 0.1, score, samples)
>>> [policy.decide(result(s), events=i, ts_ms=i) for i, s in enumerate([0.2, 1.2, 4.0, 0.9, 0.3, 2.0])]
[None, 'info', None, None, None, 'warning']
>>> policy.decide(result(5.0, samples=50), events=10, ts_ms=10) is None  # too few samples
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

from driftline.contract.records import AlertKind, Severity


@dataclass(frozen=True)
class DetectorResult:
    """One evaluation of one detector.

    ``key`` names the detector uniquely within a monitor; ``statistic`` and ``threshold`` are in the
    detector's own units (PSI, KS distance, CUSUM log-likelihood ratio, ...); ``score`` is the evidence
    relative to the threshold (``>= 1`` is past it); ``position`` is the index in the caller's batch at
    which the evaluation happened (the event the alert fires at); ``resets`` marks detectors that restart
    themselves after firing (CUSUM, ADWIN, ...): they report only detections, so hysteresis does not apply.
    """

    key: str
    kind: AlertKind
    detector: str
    feature: str | None
    statistic: float
    threshold: float | None
    score: float
    samples: int
    window: int | None = None
    p_value: float | None = None
    position: int = -1
    severity: Severity | None = None
    message: str = ""
    resets: bool = False


@dataclass(frozen=True)
class PolicyConfig:
    """Thresholds of :class:`AlertPolicy` (see the module docstring)."""

    min_samples: int = 200
    warning_score: float = 1.5
    critical_score: float = 3.0
    rearm_score: float = 0.5
    cooldown_events: int = 5_000
    cooldown_ms: int = 60_000

    def __post_init__(self) -> None:
        if not 0 <= self.rearm_score < 1 <= self.warning_score <= self.critical_score:
            raise ValueError("need 0 <= rearm_score < 1 <= warning_score <= critical_score")
        if self.min_samples < 0 or self.cooldown_events < 0 or self.cooldown_ms < 0:
            raise ValueError("min_samples and cooldowns must be >= 0")


@dataclass
class DetectorState:
    """What the policy remembers about one detector (checkpointed with the monitor)."""

    armed: bool = True
    last_event: int | None = None
    last_ts_ms: int | None = None
    alerts: int = 0


@dataclass
class AlertPolicy:
    """Turns :class:`DetectorResult` values into alert severities (or ``None``), one state per detector."""

    config: PolicyConfig = field(default_factory=PolicyConfig)
    states: dict[str, DetectorState] = field(default_factory=dict)
    #: Keys of the detectors waiting to be re-armed.
    disarmed: set[str] = field(default_factory=set)

    def decide(self, result: DetectorResult, events: int, ts_ms: int) -> Severity | None:
        """Severity of the alert ``result`` raises now (``events`` and ``ts_ms`` are the monitor's clocks)."""
        state = self.states.setdefault(result.key, DetectorState())
        if not state.armed:
            if result.score < self.config.rearm_score:
                state.armed = True
                self.disarmed.discard(result.key)
            return None
        if result.samples < self.config.min_samples or not result.score >= 1:
            return None
        if self._cooling_down(state, events, ts_ms):
            return None
        state.armed = result.resets
        if not state.armed:
            self.disarmed.add(result.key)
        state.last_event, state.last_ts_ms = events, ts_ms
        state.alerts += 1
        return result.severity or self.severity(result.score)

    def is_armed(self, key: str) -> bool:
        """Whether detector ``key`` can alert (False between an alert and its re-arming)."""
        return key not in self.disarmed

    def severity(self, score: float) -> Severity:
        """Severity of a score past the threshold."""
        if score >= self.config.critical_score:
            return "critical"
        if score >= self.config.warning_score:
            return "warning"
        return "info"

    def _cooling_down(self, state: DetectorState, events: int, ts_ms: int) -> bool:
        if state.last_event is None or state.last_ts_ms is None:
            return False
        return (
            events - state.last_event < self.config.cooldown_events
            or ts_ms - state.last_ts_ms < self.config.cooldown_ms
        )
