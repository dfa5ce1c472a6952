"""deploy/prometheus/rules.yml: the alerts an SRE needs, on metrics the code defines, loaded by the compose
Prometheus; ``promtool check`` and ``promtool test rules`` (prometheus_rules_test.yml) where promtool is installed
(Debian: ``apt-get install prometheus``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_dashboard import PROMETHEUS_BUILTINS, defined_metrics, metric_names

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules.yml"
UNIT_TESTS = Path(__file__).with_name("prometheus_rules_test.yml")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")
#: What the rules must page on (issue 17): worker down, lag growing, scoring stalled, dead letters above a rate,
#: drift and integrity alerts, label coverage falling.
REQUIRED_ALERTS = {
    "DriftlineWorkerDown",
    "DriftlineConsumerLagGrowing",
    "DriftlineScoringStalled",
    "DriftlineDeadLettersHigh",
    "DriftlineDriftDetected",
    "DriftlineModelIntegrity",
    "DriftlineLabelCoverageFalling",
}


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_the_rules_cover_every_alert_an_operator_needs_each_with_severity_and_explanation() -> None:
    alerts = {rule["alert"]: rule for rule in _rules() if "alert" in rule}
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("warning", "critical", "{{ $labels.severity }}"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_every_rule_selects_only_metrics_the_code_defines_or_rules_record() -> None:
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    known = defined_metrics() | PROMETHEUS_BUILTINS | recorded
    for rule in _rules():
        used = metric_names(rule["expr"])
        assert used, rule
        assert used <= known, f"{rule.get('alert') or rule.get('record')}: unknown {sorted(used - known)}"


def test_the_compose_prometheus_loads_the_rules() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["rules.yml"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "./deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in compose["services"]["prometheus"]["volumes"]


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@needs_promtool
def test_promtool_checks_the_config_and_its_rules() -> None:
    result = _promtool("check", "config", "prometheus.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "rules found" in result.stdout


def _unit_test(tmp_path: Path, rules_text: str, cases: list[dict[str, Any]] | None = None) -> str:
    """Run ``promtool test rules`` on ``rules_text`` without annotations (promtool compares them verbatim) and the
    unit tests of prometheus_rules_test.yml (or only ``cases``); returns promtool's output, asserting nothing."""
    rules = yaml.safe_load(rules_text)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    if cases is not None:
        tests["tests"] = cases
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    result = _promtool("test", "rules", "tests.yml", cwd=tmp_path)
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


@needs_promtool
def test_promtool_unit_tests_fire_each_alert_when_it_should_and_not_before(tmp_path: Path) -> None:
    """The alerts and recording rules on synthetic series (prometheus_rules_test.yml): each fires with its labels
    at the time it should, stays quiet before, and the coverage and dead-letter ratios compute right."""
    output = _unit_test(tmp_path, RULES.read_text())
    assert output.startswith("exit 0"), output


@needs_promtool
def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A rule with a raised threshold fails its unit test: the tests check what the rules do, not only syntax."""
    text = RULES.read_text().replace("driftline:dead_letter:ratio5m > 0.01", "driftline:dead_letter:ratio5m > 0.03")
    cases = [c for c in yaml.safe_load(UNIT_TESTS.read_text())["tests"] if "dead letters" in c["name"]]
    output = _unit_test(tmp_path, text, cases)
    assert output.startswith("exit 1") and "DriftlineDeadLettersHigh" in output, output
