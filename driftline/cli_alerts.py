"""`driftline alerts` commands: read the ``alerts`` topic."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import click

from driftline.cli_support import Misconfigured, load_settings, not_set, require_broker

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
@click.option(
    "--verify",
    is_flag=True,
    help="Show only alerts signed by the workers (signature header checked with DRIFTLINE_MODEL_HMAC_KEY).",
)
def tail(
    as_json: bool,
    from_beginning: bool,
    max_alerts: int | None,
    timeout: float | None,
    kinds: tuple[str, ...],
    models: tuple[str, ...],
    severity: str | None,
    verify: bool,
) -> None:
    """Print alerts as they arrive, one per line (Ctrl-C stops); --kind, --model and --severity filter them
    (--max counts the alerts shown).

    Needs DRIFTLINE_BROKER_URL (the broker the workers publish to). With --verify, an alert without a valid
    signature (anyone who can write to the topic could have published it) is skipped with a line on stderr.
    """
    import asyncio

    from driftline.contract.signing import IntegrityError, alert_keyring
    from driftline.streams.alerts_io import AlertFilter, summary, tail_alerts
    from driftline.streams.connections import kafka_kwargs

    settings = load_settings()
    if settings.broker_url is None:
        raise not_set("DRIFTLINE_BROKER_URL", "the workers publish their alerts there")
    try:
        alert_keys = alert_keyring(settings.keyring()) if verify else None
    except ValueError as exc:
        raise Misconfigured(str(exc)) from None
    require_broker(settings)

    def show(alert: Alert) -> None:
        click.echo(alert.model_dump_json() if as_json else summary(alert))

    def skipped(raw: bytes | None, error: Exception) -> None:
        if isinstance(error, IntegrityError):
            click.echo(f"skipped an alert that is not signed by the workers: {error}", err=True)
            return
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
        verify=alert_keys,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run)


@alerts.command()
def key() -> None:
    """Print the key that verifies alert signatures (give it to webhook receivers; it signs nothing else).

    Output: KEYID HEXKEY. A receiver checks ``X-Driftline-Signature: KEYID:HEX`` as
    HEX == HMAC-SHA256(bytes.fromhex(HEXKEY), b"alert\\0" + body).
    """
    from driftline.contract.signing import alert_keyring

    settings = load_settings()
    try:
        keys = alert_keyring(settings.keyring())
    except ValueError as exc:
        raise Misconfigured(str(exc)) from None
    click.echo(f"{keys.current_id} {keys.current.hex()}")
