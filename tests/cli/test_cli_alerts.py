"""`driftline alerts tail` without a broker: a clear one-line error and a non-zero exit."""

from __future__ import annotations

from click.testing import CliRunner

from driftline.cli import main


def test_tail_without_a_broker_url_fails_with_one_clear_line() -> None:
    result = CliRunner().invoke(main, ["alerts", "tail"], env={"DRIFTLINE_BROKER_URL": None})
    assert result.exit_code != 0
    assert result.stderr.strip().splitlines() == [
        "Error: no broker: set DRIFTLINE_BROKER_URL to the broker the workers publish alerts to"
    ]


def test_alerts_group_lists_tail() -> None:
    result = CliRunner().invoke(main, ["alerts", "--help"])
    assert result.exit_code == 0 and "tail" in result.stdout
