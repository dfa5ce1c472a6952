"""`driftline alerts tail` without a broker: a clear one-line error and a non-zero exit."""

from __future__ import annotations

from typing import get_args

from click.testing import CliRunner

from driftline.cli import main
from driftline.cli_alerts import KINDS, SEVERITIES
from driftline.contract.records import AlertKind, Severity
from driftline.streams.alerts_io import SEVERITY_ORDER


def test_tail_without_a_broker_url_fails_with_one_clear_line() -> None:
    result = CliRunner().invoke(main, ["alerts", "tail"], env={"DRIFTLINE_BROKER_URL": None})
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines() == [
        "Error: no broker: set DRIFTLINE_BROKER_URL to the broker the workers publish alerts to"
    ]


def test_alerts_group_lists_tail() -> None:
    result = CliRunner().invoke(main, ["alerts", "--help"])
    assert result.exit_code == 0 and "tail" in result.stdout


def test_the_filter_choices_are_the_contract_kinds_and_severities() -> None:
    assert get_args(AlertKind) == KINDS and SEVERITIES == get_args(Severity) == SEVERITY_ORDER
