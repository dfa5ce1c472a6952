"""Retrain on recent joined events and labels: the rows the stream's learner wrote to
``{prefix}labelled:{model}`` (features as the stream prepared them, the label as learned), trained with the same
offline pipeline as ``driftline offline train``, registered as a candidate version (not promoted).

The stream's entries are blocks of rows (or, written before blocks, one row each): :mod:`driftline.contract.labelled`
reads every form back as ``(features, label)`` rows.

>>> frame = labelled_frame([({"a": 1.0, "c": "red"}, True), ({"a": 2.0}, False), ({"a": 3.0, "b": None}, True)])
>>> frame.to_dict("list")
{'a': [1.0, 2.0, 3.0], 'c': ['red', nan, nan], 'b': [nan, nan, nan], 'label': [True, False, True]}
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import redis

from driftline.contract import keys
from driftline.contract.labelled import Row, read_rows
from driftline.models.registry import ModelRegistry
from driftline.models.version import ModelVersion
from driftline.monitoring.actions import RetrainRequest
from driftline.offline.errors import OfflineError
from driftline.offline.export import sign_manifest
from driftline.offline.framing import draft_card
from driftline.offline.register import register_dir
from driftline.offline.train import train_frame

LABEL = "label"
MIN_ROWS = 50


@dataclass(frozen=True)
class RetrainOutcome:
    """What a retrain did: the request it served (if any), rows used and the candidate version."""

    request: RetrainRequest | None
    rows: int
    since_ms: int
    version: ModelVersion


def labelled_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """A DataFrame of feature columns plus ``label`` from labelled rows (``(features, label)``)."""
    frame = pd.DataFrame.from_records([{**x, LABEL: y} for x, y in rows])
    return frame[[c for c in frame.columns if c != LABEL] + [LABEL]]


def next_request(client: redis.Redis, prefix: str, name: str) -> RetrainRequest | None:
    """Take the newest pending retrain request of ``name`` (raised by an alert's ``retrain`` action)."""
    raw = client.lpop(keys.retrain(prefix, name))
    return None if raw is None else RetrainRequest.model_validate_json(raw)


def read_labelled(client: redis.Redis, prefix: str, name: str, since_ms: int, max_rows: int) -> pd.DataFrame:
    """The newest ``max_rows`` labelled rows learned since ``since_ms``."""
    rows = read_rows(client, keys.labelled(prefix, name), since_ms, max_rows)
    if len(rows) < MIN_ROWS:
        raise OfflineError(
            f"only {len(rows)} labelled rows of model '{name}' since {since_ms} (need {MIN_ROWS}); "
            "labels are stored as the stream learns them"
        )
    return labelled_frame(rows)


def retrain(
    client: redis.Redis,
    registry: ModelRegistry,
    name: str,
    out_dir: Path,
    *,
    since_ms: int | None = None,
    max_rows: int = 100_000,
    force: bool = False,
    bootstrap: int | None = None,
) -> RetrainOutcome:
    """Train on recent labelled rows (from the pending request's window, else ``since_ms``) and register the
    result as a candidate version of ``name``."""
    request = next_request(client, registry.prefix, name)
    since = request.since_ts if request is not None else (since_ms if since_ms is not None else 0)
    frame = read_labelled(client, registry.prefix, name, since, max_rows)
    card = draft_card(frame, LABEL, decision=f"retrain of {name} on the labels the stream learned")
    if bootstrap is not None:
        card = replace(card, training=replace(card.training, bootstrap=bootstrap))
    train_frame(frame, card, out_dir, force=force)
    sign_manifest(out_dir, registry.keyring)
    reason = f" for {request.kind} alert {request.alert_id}" if request is not None else ""
    version = register_dir(
        out_dir,
        registry,
        name,
        promote=False,
        note=f"retrain candidate on {len(frame)} labelled rows since {since}{reason}",
    )
    return RetrainOutcome(request, len(frame), since, version)


def hours_ago_ms(hours: float, now_ms: int | None = None) -> int:
    """Epoch ms ``hours`` before now.

    >>> hours_ago_ms(1, now_ms=7_200_000)
    3600000
    """
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    return max(0, now - int(hours * 3600 * 1000))
