"""Store the River model of a training output directory, with its reference profile, as a new registry version.

Examples
--------
>>> registry_metrics({"primary_metric": "f1", "online_model": {"test": {"value": 0.9, "ci_low": 0.8,
...                   "ci_high": None}, "replayed_rows": 10}, "baseline": {"value": 0.5}})
{'f1': 0.9, 'f1_ci_low': 0.8, 'baseline_f1': 0.5, 'replayed_rows': 10.0}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from driftline.models.reference import ReferenceProfile
from driftline.offline.errors import OfflineError
from driftline.offline.export import OnlineArtifact, verify_manifest
from driftline.offline.skops_model import CHOSEN_MODEL, load_model, refuse_legacy

REFERENCE = "reference_profile.json"
METRICS = "metrics.json"


def registry_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The River model's test metric with its interval, and the baseline's, as the registry's float metrics."""
    name = metrics["primary_metric"]
    online = metrics["online_model"]
    values = {
        name: online["test"].get("value"),
        f"{name}_ci_low": online["test"].get("ci_low"),
        f"{name}_ci_high": online["test"].get("ci_high"),
        f"baseline_{name}": metrics.get("baseline", {}).get("value"),
        "replayed_rows": online.get("replayed_rows"),
    }
    return {k: float(v) for k, v in values.items() if v is not None}


def data_summary(metrics: dict[str, Any], online: OnlineArtifact, directory: Path) -> dict[str, Any]:
    """Where the version came from: data, split, label mapping, the offline verdict."""
    return {
        "source": metrics.get("source"),
        "offline_dir": str(directory.resolve()),
        "target": metrics.get("target"),
        "labels": online.labels,
        "positive_class": online.positive_class,
        "label_encoding": online.meta.get("label_encoding"),
        "rows_used": metrics["data"]["rows_used"],
        "inferred": {
            "task": metrics.get("task"),
            "schema": metrics["data"].get("features"),
            "conflicts": metrics["data"].get("conflicts", {}),
            "conflicting_dropped": metrics["data"].get("conflicting_dropped", 0),
        },
        "train_rows": metrics["split"]["train_rows"],
        "test_sha256": metrics["split"]["test_sha256"],
        "offline_chosen_model": metrics["chosen"]["name"],
        "offline_verdict": metrics["verdict"]["decision"],
    }


def register_dir(
    directory: Path,
    registry: Any,
    name: str,
    *,
    promote: bool = True,
    note: str | None = None,
    trust_unsigned: bool = False,
) -> Any:
    """Verify the directory's manifest (its signature with the registry's keyring, unless ``trust_unsigned``),
    then load its River model and reference profile, and register them as the next version of ``name`` in
    ``registry`` (a :class:`driftline.models.registry.ModelRegistry`). Nothing is unpickled before the check."""
    directory = Path(directory)
    if not directory.is_dir():
        raise OfflineError(f"{directory} is not a directory")
    verify_manifest(directory, [METRICS, REFERENCE], registry.keyring, trust_unsigned)
    online = OnlineArtifact.load(directory)
    metrics = json.loads((directory / METRICS).read_text())
    reference = ReferenceProfile.from_json((directory / REFERENCE).read_text())
    if reference.schema() != online.schema:
        raise OfflineError(f"{REFERENCE} and the River model's schema disagree")
    return registry.register(
        name,
        online.model,
        schema=online.schema,
        task=online.task,
        metrics=registry_metrics(metrics),
        data_summary=data_summary(metrics, online, directory),
        note=note if note is not None else f"offline train of {metrics.get('source')}",
        reference=reference,
        promote=promote,
    )


def register_challenger_dir(
    directory: Path, registry: Any, name: str, *, note: str | None = None, trust_unsigned: bool = False
) -> Any:
    """Register DIRECTORY's chosen scikit-learn model (``model.skops``) as a new, not promoted version of
    ``name`` and make it the challenger the workers score in shadow beside the current version (the manifest's
    signature is checked first, as in :func:`register_dir`)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise OfflineError(f"{directory} is not a directory")
    refuse_legacy(directory)
    verify_manifest(directory, [METRICS, REFERENCE, CHOSEN_MODEL], registry.keyring, trust_unsigned)
    chosen = load_model(directory / CHOSEN_MODEL)
    online = OnlineArtifact.load(directory)
    metrics = json.loads((directory / METRICS).read_text())
    version = registry.register(
        name,
        chosen,
        schema=online.schema,
        task=online.task,
        metrics=registry_metrics(metrics),
        data_summary=data_summary(metrics, online, directory),
        note=note or f"offline challenger {getattr(chosen, 'name', '')} of {metrics.get('source')}",
        reference=ReferenceProfile.from_json((directory / REFERENCE).read_text()),
        promote=False,
    )
    registry.set_challenger(name, version.version)
    return version
