"""Detector families: registered by name, each declaring its budget count, assembled by the monitor."""

from __future__ import annotations

import dataclasses

import pytest

from driftline.models.features import FeatureSchema
from driftline.monitoring.detector import REGISTRY
from driftline.monitoring.monitor import Monitor, MonitorConfig

SCHEMA = FeatureSchema({"amount": "numeric", "age": "numeric", "country": "categorical"})


def test_the_budget_is_split_over_the_counts_the_assembled_families_declare() -> None:
    every = Monitor("m", SCHEMA, "binary", None)
    assert list(every.families) == list(MonitorConfig().detectors)
    declared = {name: REGISTRY[name].count(every.scope) for name in every.families}
    assert every.detectors == sum(declared.values()) == 19
    fewer = Monitor("m", SCHEMA, "binary", None, dataclasses.replace(MonitorConfig(), detectors=("data_drift",)))
    assert fewer.detectors == declared["data_drift"] == 5 and fewer.alpha > every.alpha


def test_an_unknown_family_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown detector families"):
        Monitor("m", SCHEMA, "binary", None, dataclasses.replace(MonitorConfig(), detectors=("psi_only",)))
