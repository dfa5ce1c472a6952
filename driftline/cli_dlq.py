"""`driftline dlq`: read the dead-letter topic and replay its messages after a fix.

``replay`` re-publishes each dead letter's original key and value, untouched, to the topic named in its
``dlq.source.topic`` header, with a ``dlq.replayed`` count header, and commits its progress in its own
consumer group: a finished replay is not repeated. ``inspect`` only reads (no group, nothing committed).

Both need a running broker (``DRIFTLINE_BROKER_URL``): the embedded demo's dead-letter topic lives only as
long as the demo. The broker I/O is :mod:`driftline.streams.dlq_io`, imported when a command runs.
"""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

from driftline.cli_support import load_settings, require_broker
from driftline.streams.dlq import DEFAULT_MAX_REPLAYS, STAGES, ReplayPolicy, format_line, replay_group_id

if TYPE_CHECKING:
    from driftline.contract.settings import Settings

T = TypeVar("T")


def broker_settings(topic_prefix: str | None = None) -> tuple[Settings, str]:
    """Settings from the environment and the broker URL, once the broker answered; one line (exit 2) if unusable."""
    settings = load_settings()
    if topic_prefix is not None:
        settings = settings.model_copy(update={"topic_prefix": topic_prefix})
    return settings, require_broker(settings, "`driftline dlq` reads the dead-letter topic of a running broker")


def run_on_broker(bootstrap: str, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; a Kafka error becomes a one-line :class:`click.ClickException` naming the broker."""
    import asyncio

    from aiokafka.errors import KafkaError

    try:
        return asyncio.run(work)
    except KafkaError as exc:
        text = str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}"
        raise click.ClickException(f"broker {bootstrap}: {text}") from exc


_STOPPED = {
    "drained": "reached the end of the topic",
    "max": "reached --max",
    "timeout": "stopped at --timeout (run again to continue)",
    "missing": "the topic does not exist",
}

_prefix_option = click.option(
    "--topic-prefix", default=None, help="Topic prefix (default: DRIFTLINE_TOPIC_PREFIX or 'driftline.')."
)
_stage_option = click.option(
    "--stage",
    "stages",
    multiple=True,
    type=click.Choice(STAGES),
    help="Only dead letters of this stage (repeatable; default: every stage).",
)
_timeout_option = click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to spend at most; a replay cut short continues where it stopped next time.",
)


@click.group()
def dlq() -> None:
    """Inspect and replay the dead-letter topic (original bytes untouched, the reason in headers)."""


@dlq.command()
@_prefix_option
@_stage_option
@click.option("--max", "limit", type=click.IntRange(min=1), default=None, help="Read at most N dead letters.")
@_timeout_option
@click.option(
    "--max-replays",
    default=DEFAULT_MAX_REPLAYS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Skip a dead letter already replayed this many times (a replay loop).",
)
@click.option(
    "--group",
    "group_id",
    default=None,
    help="Consumer group keeping the replay's progress (default: PREFIXdlq-replay[.STAGES]).",
)
@click.option("--dry-run", is_flag=True, help="Print what would be replayed; send and commit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
def replay(
    topic_prefix: str | None,
    stages: tuple[str, ...],
    limit: int | None,
    timeout: float,
    max_replays: int,
    group_id: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Re-publish dead letters to their source topics after a fix.

    Each message's original key and value go, untouched, to the topic in its dlq.source.topic header, with
    a dlq.replayed header counting replays. Progress is committed in the replay's own consumer group, so
    running it again replays only dead letters that arrived since. Run one replay at a time.
    """
    from driftline.streams.dlq_io import replay_dead_letters

    settings, bootstrap = broker_settings(topic_prefix)
    policy = ReplayPolicy(
        prefix=settings.topic_prefix,
        dead_letter_topic=settings.topic("dead-letter"),
        stages=frozenset(stages),
        max_replays=max_replays,
    )
    group = group_id or replay_group_id(settings.topic_prefix, stages)

    def show(description: dict[str, Any], decision: str) -> None:
        if dry_run and not as_json:
            verdict = "would replay" if decision == "replay" else decision.replace("_", " ")
            click.echo(f"{verdict}: {format_line(description)}")

    counts, stopped = run_on_broker(
        bootstrap, replay_dead_letters(settings, bootstrap, policy, group, limit, timeout, dry_run, show)
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "topic": policy.dead_letter_topic,
                    "group": group,
                    "dry_run": dry_run,
                    "stopped": stopped,
                    **counts.as_dict(),
                },
                sort_keys=True,
            )
        )
    else:
        verb = "dry run: would have " if dry_run else ""
        click.echo(f"{policy.dead_letter_topic}: {verb}{counts.summary()}; {_STOPPED[stopped]}")


@dlq.command()
@_prefix_option
@_stage_option
@click.option(
    "--max", "limit", type=click.IntRange(min=1), default=20, show_default=True, help="Print at most N dead letters."
)
@_timeout_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (value as text or base64).")
def inspect(topic_prefix: str | None, stages: tuple[str, ...], limit: int, timeout: float, as_json: bool) -> None:
    """Print dead letters with where they came from and why they were rejected (reads only)."""
    from driftline.streams.dlq_io import read_dead_letters

    settings, bootstrap = broker_settings(topic_prefix)
    topic = settings.topic("dead-letter")
    found, stopped = run_on_broker(
        bootstrap, read_dead_letters(settings, bootstrap, topic, limit, timeout, frozenset(stages))
    )
    for description in found:
        click.echo(json.dumps(description, sort_keys=True) if as_json else format_line(description))
    if not as_json:
        click.echo(f"{topic}: {len(found)} shown; {_STOPPED[stopped]}", err=True)
