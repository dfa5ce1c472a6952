"""`driftline report`: the live drift report of a running deployment (HTML and/or JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from driftline.cli_support import (
    Unreachable,
    load_settings,
    no_permission_line,
    require_broker,
    require_key,
    require_redis,
)
from driftline.contract.urls import masked


@click.command()
@click.option("--model", "name", default=None, help="Model name (default: DRIFTLINE_MODEL_NAME).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write the self-contained HTML page here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report's numbers as one JSON document.")
@click.option(
    "--alerts-wait",
    default=2.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Stop reading the alerts topic after this many seconds without a new alert.",
)
def report(name: str | None, out: Path | None, as_json: bool, alerts_wait: float) -> None:
    """Live drift report of a model: reference vs current distribution and tests per feature, drift over time,
    prediction drift, estimated vs realised performance, data quality, the alert timeline, served and challenger
    versions.

    Reads the monitors' checkpoints and the registry in DRIFTLINE_REDIS_URL and the alerts topic on
    DRIFTLINE_BROKER_URL (alerts are left out, with a note, when no broker is set).
    """
    import asyncio

    import redis
    from aiokafka.errors import KafkaError

    from driftline.monitoring.live_view import report_data
    from driftline.offline.live_report import render_live_report
    from driftline.streams.connections import redis_client
    from driftline.streams.report_io import read_alerts, read_monitors, read_versions

    if out is None and not as_json:
        raise click.UsageError("give --out report.html, --json, or both")
    settings = load_settings()
    require_key(settings)
    name = name or settings.model_name
    client = redis_client(settings, require_redis(settings, "the report reads the monitors' checkpoints there"))
    try:
        scoring, learning = read_monitors(client, settings, name)
        versions = read_versions(client, settings, name)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unreachable(
            f"Redis unreachable at {masked(settings.redis_url)}: {exc}; check DRIFTLINE_REDIS_URL"
        ) from None
    except redis.exceptions.NoPermissionError as exc:
        raise Unreachable(no_permission_line(exc, settings)) from None
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis error at {masked(settings.redis_url)}: {exc}") from None
    except ValueError as exc:
        raise click.ClickException(f"monitor checkpoint of {name!r} cannot be read: {exc}") from None
    finally:
        client.close()
    if scoring is None and learning is None and versions["served"] is None:
        raise click.ClickException(
            f"no model {name!r} in {masked(settings.redis_url or '')}: nothing registered or monitored"
        )
    alerts = []
    if settings.broker_url is None:
        click.echo("DRIFTLINE_BROKER_URL is not set: the report has no alerts", err=True)
    else:
        require_broker(settings)  # a broker that is down or not Kafka: one line, exit 2, after a bounded wait
        try:
            alerts = asyncio.run(read_alerts(settings, settings.broker_url, alerts_wait))
        except (KafkaError, OSError) as exc:
            raise click.ClickException(f"broker {settings.broker_url}: {exc}") from None
    data = report_data(name, scoring, learning, alerts, versions)
    if out is not None:
        out.write_text(render_live_report(data), encoding="utf-8")
        click.echo(
            f"wrote {out}: {len(data['features'])} features, {len(data['alerts'])} alerts, "
            f"{data['counts']['events']} events scored",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(data))
