"""The provisioned Grafana dashboard: loads, queries only metrics the code defines, uses the provisioned data
source, matches its generator, and every panel is explained in the runbook."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/driftline.json"
GENERATOR = ROOT / "deploy/grafana/build_dashboard.py"
METRIC_PACKAGES = ("streams", "monitoring", "models", "driftline")
#: Series Prometheus itself adds to every scrape target.
PROMETHEUS_BUILTINS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


def _load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _metric_modules() -> list[str]:
    """Modules of the product that define Prometheus metrics (they import prometheus_client)."""
    modules = []
    for package in METRIC_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "prometheus_client" in path.read_text():
                parts = path.relative_to(ROOT).with_suffix("").parts
                modules.append(".".join(parts if parts[0] == "driftline" else ("driftline", *parts)))
    return modules


def defined_metrics() -> set[str]:
    """Every series name the code exposes: import the metric modules, then read prometheus_client's registry."""
    for module in _metric_modules():
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("driftline_"):
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, label names, keywords and numbers left out).

    >>> sorted(metric_names('sum by (le, model) (rate(a_bucket{model=~"$model"}[5m])) / on (x) b + 1e-9'))
    ['a_bucket', 'b']
    """
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w$.])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        if match.group(0).lower() not in PROMQL_WORDS:
            names.add(match.group(0))
    return names


def _panels() -> list[dict[str, Any]]:
    panels = []
    for panel in _load()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and templating query."""
    queries = [(panel["title"], target["expr"]) for panel in _panels() for target in panel.get("targets", [])]
    for variable in _load()["templating"]["list"]:
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", text)
        queries.append((f"variable {variable['name']}", inner.group(1) if inner else text))
    return queries


def test_dashboard_json_loads_with_unique_panel_ids_on_the_24_column_grid() -> None:
    """The file is a Grafana dashboard model: uid, title, panels with unique ids that fit the grid."""
    board = _load()
    assert board["uid"] == "driftline" and board["title"]
    ids = [panel["id"] for panel in _panels()]
    assert len(ids) == len(set(ids)) and len(ids) > 10
    for panel in _panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


def test_every_query_selects_only_metrics_that_the_code_defines() -> None:
    """Each PromQL expression (panels and the model variable) names at least one metric, and every metric
    it names is exposed by a prometheus_client metric of the code (or is Prometheus' own `up`)."""
    known = defined_metrics() | PROMETHEUS_BUILTINS
    assert "driftline_events_scored_total" in known and "driftline_scoring_latency_seconds_bucket" in known
    queries = _queries()
    assert len(queries) > 10
    for where, expr in queries:
        used = metric_names(expr)
        assert used, f"{where}: no metric in {expr!r}"
        assert used <= known, f"{where}: unknown metrics {sorted(used - known)} in {expr!r}"


def test_every_streaming_and_monitoring_metric_has_a_panel() -> None:
    """Each metric of streams/metrics.py (throughput, dead letters, latency, lag, models, Redis) and of
    streams/metrics_drift.py (drift, quality, alerts, labels, estimates) is shown."""
    import driftline.streams.metrics as streaming
    import driftline.streams.metrics_drift as drift

    shown = {name for _, expr in _queries() for name in metric_names(expr)}
    metrics = [value for value in vars(streaming).values() if isinstance(value, MetricWrapperBase)]
    metrics += [value for value in vars(drift.METRICS).values() if isinstance(value, MetricWrapperBase)]
    assert len(metrics) >= 25
    for metric in metrics:
        family = metric.describe()[0]
        assert any(name.startswith(family.name) for name in shown), f"{family.name} has no panel"


def test_every_datasource_reference_is_the_provisioned_prometheus_uid() -> None:
    """Panels, targets and the variable all point at the data source uid that provisioning creates."""
    provisioned = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    references = [panel["datasource"] for panel in _panels() if panel["type"] != "row"]
    references += [target["datasource"] for panel in _panels() for target in panel.get("targets", [])]
    references += [variable["datasource"] for variable in _load()["templating"]["list"]]
    assert references and all(ref == {"type": "prometheus", "uid": uid} for ref in references)


def test_stored_dashboard_is_what_the_generator_renders() -> None:
    """dashboards/driftline.json was regenerated after the last edit of build_dashboard.py."""
    spec = importlib.util.spec_from_file_location("build_dashboard", GENERATOR)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(generator)
    finally:
        del sys.modules[spec.name]
    assert DASHBOARD.read_text() == generator.render(), "run: python deploy/grafana/build_dashboard.py"


def test_the_runbook_explains_every_panel() -> None:
    """docs/RUNBOOK.md's dashboard section names each panel title (what it means, what to do)."""
    runbook = (ROOT / "docs/RUNBOOK.md").read_text()
    section = runbook.split("## Read the dashboard", 1)[1].split("\n## ", 1)[0]
    for panel in _panels():
        if panel["type"] != "row":
            assert f"**{panel['title']}**" in section, panel["title"]
            assert panel["description"], panel["title"]
