"""Actions per alert kind: none, roll back to the previous model version, adjust the decision threshold, or
request a retrain. Pure decisions and records; the streaming agents carry them out (registry rollback, publish
the retrain request, apply the threshold).

Examples
--------
>>> actions = default_actions()
>>> choose_action("concept_drift", actions), choose_action("data_drift", actions)
('retrain', 'none')
>>> request = retrain_request("fraud", 3, alert_id="a1", kind="concept_drift", reason="cusum fired", ts_ms=5000,
...                           lookback_ms=3_600_000)
>>> request.model, request.since_ts, request.request_id == retrain_request(
...     "fraud", 3, "a1", "concept_drift", "cusum fired", 5000, 3_600_000).request_id
('fraud', 0, True)
>>> round(recommend_threshold(np.array([0.1, 0.2, 0.6, 0.7, 0.8, 0.9]), positive_rate=0.5), 3)  # half positive
0.65
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, ConfigDict

from driftline.contract.records import AlertKind
from driftline.contract.settings import AlertAction

ACTIONS: tuple[AlertAction, ...] = ("none", "rollback", "adjust_threshold", "retrain")


def default_actions() -> dict[AlertKind, AlertAction]:
    """Conservative defaults: retrain on concept drift, roll back on a model-integrity failure, else notify (a
    broker whose offsets went backwards, ``offsets_reset``, too)."""
    return {
        "data_drift": "none",
        "prediction_drift": "none",
        "concept_drift": "retrain",
        "data_quality": "none",
        "performance": "none",
        "model_integrity": "rollback",
        "offsets_reset": "none",
    }


def choose_action(kind: AlertKind, actions: Mapping[AlertKind, AlertAction]) -> AlertAction:
    """The configured action of an alert kind (``none`` when not configured)."""
    action = actions.get(kind, "none")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} for {kind}; expected one of {ACTIONS}")
    return action


class RetrainRequest(BaseModel):
    """A request to retrain ``model`` on joined events and labels since ``since_ts`` (epoch ms).

    ``driftline offline retrain`` consumes it and registers a candidate version; ``request_id`` is derived from
    the alert, so a replayed alert yields the same request.
    """

    model_config = ConfigDict(frozen=True)

    request_id: str
    model: str
    model_version: int | None
    alert_id: str
    kind: AlertKind
    reason: str
    since_ts: int
    ts: int


def retrain_request(
    model: str, model_version: int | None, alert_id: str, kind: AlertKind, reason: str, ts_ms: int, lookback_ms: int
) -> RetrainRequest:
    """The retrain request an alert raises: train on the ``lookback_ms`` before ``ts_ms``."""
    request_id = hashlib.sha256(f"retrain|{model}|{alert_id}".encode()).hexdigest()[:24]
    return RetrainRequest(
        request_id=request_id,
        model=model,
        model_version=model_version,
        alert_id=alert_id,
        kind=kind,
        reason=reason,
        since_ts=max(0, ts_ms - lookback_ms),
        ts=ts_ms,
    )


def recommend_threshold(scores: np.ndarray, positive_rate: float) -> float:
    """Decision threshold on recent positive-class scores that keeps the reference positive rate.

    For ``adjust_threshold``: after prediction drift of a binary classifier, predicting positive above this
    threshold flags the same share of events as in the reference.
    """
    values = np.asarray(scores, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("no scores")
    if not 0 <= positive_rate <= 1:
        raise ValueError("positive_rate must be in [0, 1]")
    return float(np.quantile(values, 1 - positive_rate))
