"""`driftline status` and `driftline trace`: the state of a deployment, and the life of one event in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from driftline.cli_support import Unreachable, load_settings, require_key

if TYPE_CHECKING:  # imported when the command runs, not by `driftline --help` (see driftline.cli)
    from rich.table import Table


def _run(coroutine: Any) -> dict[str, Any]:
    import asyncio

    from driftline.streams.inspection import StackUnreachable

    try:
        return asyncio.run(coroutine)
    except StackUnreachable as exc:
        raise Unreachable(str(exc)) from None


def _partitions(title: str, rows: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("partition", "position", "end", "lag"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*("-" if row[c] is None else str(row[c]) for c in ("partition", "position", "end", "lag")))
    return table


def _members(group: dict[str, Any]) -> str:
    parts = []
    for m in group["members"]:
        assigned = "partitions not reported" if m["partitions"] is None else f"partitions {m['partitions']}"
        parts.append(f"{m['member_id']} ({m['host'] or 'host not reported'}, {assigned})")
    return "; ".join(parts) or "no members"


def _iso(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--alerts", "last_alerts", default=5, show_default=True, type=click.IntRange(min=0), help="Last alerts.")
def status(as_json: bool, last_alerts: int) -> None:
    """Broker and Redis reachable, consumer groups (members, lag per partition), models (served version,
    challenger, threshold, labels learned, learner position) and the last alerts.

    The learner's position is the one in its checkpoints (it commits there, exactly once, not to Kafka).
    Exit status 2 with one line when the broker or Redis cannot be reached.
    """
    from rich.console import Console
    from rich.table import Table

    from driftline.contract.records import Alert
    from driftline.streams.alerts_io import summary
    from driftline.streams.status import collect_status

    settings = load_settings()
    require_key(settings)
    report = _run(collect_status(settings, last_alerts))
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    console = Console()
    broker, redis_ = report["broker"], report["redis"]
    console.print(f"broker {broker['url']}: reachable (cluster {broker['cluster_id']}, brokers {broker['brokers']})")
    console.print(f"redis {redis_['url']}: reachable")
    for role in ("scoring", "learning"):
        group = report[role]
        console.print(
            f"{role} group {group['group']} on {group['topic']}: {group['state']}, "
            f"{len(group['members'])} member(s), lag {group['lag']}: {_members(group)}"
        )
        if group["partitions"]:
            console.print(_partitions(f"{role} lag per partition", group["partitions"]))
    models = Table(title="models", title_justify="left")
    for column in ("model", "served", "challenger", "latest", "task", "threshold", "labels learned", "learner lag"):
        models.add_column(column)
    for m in report["models"]:
        learner = m["learner"]
        lag = sum(r["lag"] for r in learner.get("partitions", []))
        models.add_row(
            m["name"],
            str(m["served_version"]),
            str(m["challenger_version"] or "-"),
            str(m["latest_version"]),
            str(m["task"]),
            "-" if m["threshold"] is None else f"{m['threshold']:g}",
            str(learner["learned"]),
            str(lag) if learner.get("partitions") else learner.get("error", "no checkpoint yet"),
        )
    console.print(models if report["models"] else "no models registered")
    console.print(f"last {len(report['alerts'])} alert(s):" if report["alerts"] else "no alerts")
    for alert in report["alerts"]:
        console.print("  " + summary(Alert(**alert)), markup=False, highlight=False)


@click.command()
@click.argument("event_id")
@click.option("--model", default=None, help="Model of the event [default: the event's, else DRIFTLINE_MODEL_NAME].")
@click.option(
    "--depth",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Read at most this many of the newest records of each partition.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the trace as JSON.")
def trace(event_id: str, model: str | None, depth: int, as_json: bool) -> None:
    """Follow one event: its message, prediction(s) with version and probabilities, join record, label(s) and
    whether each was learned, dead letters and why, alerts it triggered.

    Scans the newest --depth records of the partitions of events, predictions, labels and alerts its keys hash
    to, and of the dead-letter topic.
    Exit status 1 when nothing of the event is found, 2 with one line when the broker or Redis cannot be reached.
    """
    from driftline.streams.trace import trace_event

    settings = load_settings()
    require_key(settings)
    report = _run(trace_event(settings, event_id, model, depth))
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
    else:
        _print_trace(report)
    if not report["found"]:
        raise click.ClickException(f"no trace of event '{event_id}' on the topics or in Redis")


def _print_trace(report: dict[str, Any]) -> None:
    from driftline.contract.records import Alert
    from driftline.streams.alerts_io import summary

    echo = click.echo
    echo(f"event {report['event_id']} (model {report['model']})")
    event = report["event"]
    if event is None:
        echo("  message: not on events (sent over HTTP, expired, or never published)")
    else:
        scored = "the scoring group is past it" if event["scored_by_group"] else "not yet consumed by the scorers"
        echo(f"  message: events[{event['partition']}]@{event['offset']}, ts {_iso(event['ts'])}, {scored}")
    for p in report["predictions"]:
        echo(
            f"  prediction: {p['prediction']!r} by {p['model']} v{p['model_version']}, probabilities "
            f"{p['probabilities']}, score {p['score']}, at {_iso(p['ts'])} "
            f"(predictions[{p['partition']}]@{p['offset']})"
        )
    if not report["predictions"]:
        echo("  prediction: none")
    join = report["join_record"]
    echo(
        f"  join record: v{join['version']}, prediction {join['prediction']!r}, kept until {_iso(join['expires_ms'])}"
        if join
        else "  join record: none (not scored, scored over HTTP without an event_id, its label learned, or expired)"
    )
    for label in report["labels"]:
        echo(
            f"  label: {label['label']!r} at {_iso(label['ts'])} "
            f"(labels[{label['partition']}]@{label['offset']}): {label['status']}"
        )
    if not report["labels"]:
        echo("  label: none yet")
    for d in report["dead_letters"]:
        echo(f"  dead-lettered from {d['source_topic']}: {d['stage']}: {d['error_class']}: {d['reason']}")
    for alert in report["alerts"]:
        echo("  alert: " + summary(Alert(**alert)))
