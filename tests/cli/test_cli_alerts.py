"""`driftline alerts`: its commands and filter choices (an unset broker URL: tests/cli/test_cli_support.py)."""

from __future__ import annotations

from typing import get_args

from click.testing import CliRunner

from driftline.cli import main
from driftline.cli_alerts import KINDS, SEVERITIES
from driftline.contract.records import AlertKind, Severity
from driftline.streams.alerts_io import SEVERITY_ORDER


def test_alerts_group_lists_tail() -> None:
    result = CliRunner().invoke(main, ["alerts", "--help"])
    assert result.exit_code == 0 and "tail" in result.stdout


def test_the_filter_choices_are_the_contract_kinds_and_severities() -> None:
    assert get_args(AlertKind) == KINDS and SEVERITIES == get_args(Severity) == SEVERITY_ORDER
