"""`driftline alerts` commands: read the ``alerts`` topic."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import click

from driftline.cli_support import load_settings, require_broker

if TYPE_CHECKING:  # imported when a command runs, not by `driftline --help`
    from driftline.contract.records import Alert

#: The alert kinds and severities of driftline.contract.records (repeated here: this module imports only click;
#: tests/cli/test_cli_alerts.py checks they match).
KINDS = (
    "data_drift",
    "prediction_drift",
    "concept_drift",
    "data_quality",
    "performance",
    "model_integrity",
    "offsets_reset",
)
SEVERITIES = ("info", "warning", "critical")


@click.group()
def alerts() -> None:
    """Alerts raised by the monitors (drift, quality, performance, model integrity)."""


@alerts.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON alert record per line instead of a summary.")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest alert kept by the broker.")
@click.option("--max", "max_alerts", type=click.IntRange(min=1), default=None, help="Stop after N alerts.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after S seconds without a new alert.",
)
@click.option("--kind", "kinds", multiple=True, type=click.Choice(KINDS), help="Only this kind (repeatable).")
@click.option("--model", "models", multiple=True, help="Only alerts of this model (repeatable).")
@click.option("--severity", type=click.Choice(SEVERITIES), default=None, help="Only this severity and above.")
def tail(
    as_json: bool,
    from_beginning: bool,
    max_alerts: int | None,
    timeout: float | None,
    kinds: tuple[str, ...],
    models: tuple[str, ...],
    severity: str | None,
) -> None:
    """Print alerts as they arrive, one per line (Ctrl-C stops); --kind, --model and --severity filter them
    (--max counts the alerts shown).

    Needs DRIFTLINE_BROKER_URL (the broker the workers publish to).
    """
    import asyncio

    from driftline.streams.alerts_io import AlertFilter, summary, tail_alerts
    from driftline.streams.connections import kafka_kwargs

    settings = load_settings()
    if settings.broker_url is None:
        raise click.ClickException("no broker: set DRIFTLINE_BROKER_URL to the broker the workers publish alerts to")
    require_broker(settings)

    def show(alert: Alert) -> None:
        click.echo(alert.model_dump_json() if as_json else summary(alert))

    def skipped(raw: bytes | None, error: Exception) -> None:
        click.echo(f"skipped a message that is not an alert: {error.__class__.__name__}", err=True)

    run = tail_alerts(
        settings.topic("alerts"),
        kafka_kwargs(settings, settings.broker_url),
        show,
        from_beginning=from_beginning,
        max_alerts=max_alerts,
        timeout=timeout,
        on_invalid=skipped,
        only=AlertFilter(kinds, models, severity),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run)
