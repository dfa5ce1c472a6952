"""`driftline demo | up | worker | produce`: run the embedded stack, a worker, the demo, and publish files.

Imports beyond click happen inside the commands (`driftline --help` stays cheap; see :mod:`driftline.cli`).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import click

from driftline.cli_support import (
    Misconfigured,
    StopSignals,
    Unreachable,
    load_settings,
    no_permission_line,
    not_set,
    require_broker,
    require_key,
)
from driftline.contract.urls import masked


@click.command()
@click.option(
    "--events",
    "events_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL or CSV of events (default: a synthetic River stream with drift in the middle).",
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL of labels ({event_id, label, ts}).",
)
@click.option(
    "--label-delay",
    default=500,
    show_default=True,
    type=click.IntRange(min=0),
    help="Publish each label this many events after its event.",
)
@click.option(
    "--n-events",
    default=20_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Size of the synthetic stream (ignored with --events).",
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for every event to come out.")
@click.option(
    "--task",
    type=click.Choice(["binary", "multiclass", "regression"]),
    default=None,
    help="Task of the fresh model (default: the one most labels agree on; needed when the labels are ambiguous).",
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line of the summary.")
def demo(
    events_path: Path | None,
    labels_path: Path | None,
    label_delay: int,
    n_events: int,
    timeout: float,
    task: str | None,
    as_json: bool,
) -> None:
    """Start the embedded stack and a worker, publish events (and labels), show every event come out."""
    import asyncio

    from rich.console import Console

    from driftline.embedded.demo import run_demo

    console = Console(stderr=True)
    try:
        summary = asyncio.run(run_demo(events_path, labels_path, label_delay, n_events, timeout, console, task))
    except (ValueError, RuntimeError, TimeoutError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    console.print(
        f"[bold green]done[/]: {summary['events']} events, {summary['scored']} scored, "
        f"{summary['dead_lettered']} dead-lettered, {summary['labels']} labels, {summary['learned']} learned, "
        f"{len(summary['alerts'])} alerts, {summary['eps']} events/s"
    )
    for alert in summary["alerts"]:
        console.print(
            f"  alert {alert['kind']} [{alert['severity']}] {alert.get('feature') or ''} "
            f"by {alert['detector']} at {alert.get('event_id')}"
        )
    if as_json:
        click.echo(json.dumps(summary))


@click.command()
def up() -> None:
    """Start only the embedded broker and Redis, print their URLs and the stack's own signing key, stop them on
    Ctrl-C. Each stack has a new random key (kept in a 0600 file in its folder) and a Redis password (in the URL):
    nothing of it is public."""
    import signal

    from driftline.embedded.stack import embedded_stack

    settings = load_settings()
    # Installed before the stack starts: a SIGTERM that arrives as soon as the URLs are printed (or while the
    # servers start) must still stop them, not kill this process and orphan both.
    stop = StopSignals(signal.SIGTERM)
    with embedded_stack(key_prefix=settings.redis_prefix) as stack:
        click.echo(f"export DRIFTLINE_BROKER_URL={stack.broker_url}")
        click.echo(f"export DRIFTLINE_REDIS_URL={stack.redis_url}")
        click.echo(f"export DRIFTLINE_MODEL_HMAC_KEY={stack.hmac_key}")
        click.echo(f"# broker pid {stack.broker.pid}, redis pid {stack.redis.pid}; Ctrl-C stops both", err=True)
        try:
            while not stop.wait(0.5):
                for server in (stack.broker, stack.redis):
                    if server.proc.poll() is not None:
                        raise click.ClickException(f"{server.name} (pid {server.pid}) exited; see {stack.workdir}")
        except KeyboardInterrupt:
            pass
    click.echo("stopped", err=True)


@click.command()
@click.option(
    "--loglevel", default="warning", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
def worker(loglevel: str) -> None:
    """Run a Faust worker: score events, learn from labels, monitor, alert.

    Connects to DRIFTLINE_BROKER_URL and DRIFTLINE_REDIS_URL; when both are unset it starts the embedded stack
    itself and stops it on exit. Serves the real-time V2 inference API (KServe/MLServer/Triton protocol) on
    DRIFTLINE_HTTP_HOST:DRIFTLINE_HTTP_PORT (127.0.0.1:8080; port 0 disables it).
    """
    settings = load_settings()
    if bool(settings.broker_url) != bool(settings.redis_url):
        raise Misconfigured("set both DRIFTLINE_BROKER_URL and DRIFTLINE_REDIS_URL, or neither (embedded)")
    if settings.broker_url:
        require_key(settings)  # before the worker's heavy imports: a missing key is one line at once
    if settings.kafka_client == "confluent" and importlib.util.find_spec("confluent_kafka") is None:
        raise Misconfigured("DRIFTLINE_KAFKA_CLIENT=confluent needs confluent-kafka: pip install confluent-kafka")

    import redis
    from pydantic import SecretStr

    from driftline.embedded.stack import embedded_stack
    from driftline.streams.app import run_worker
    from driftline.streams.connections import BrokerUnreachable
    from driftline.streams.http_api import BindError

    try:
        if settings.broker_url and settings.redis_url:
            run_worker(settings, settings.broker_url, settings.redis_url, loglevel)
            return
        with embedded_stack(key_prefix=settings.redis_prefix) as stack:
            click.echo(f"embedded stack: broker {stack.broker_url}, redis {masked(stack.redis_url)}", err=True)
            if settings.model_hmac_key is None:
                settings = settings.model_copy(update={"model_hmac_key": SecretStr(stack.hmac_key)})
            run_worker(settings, stack.broker_url, stack.redis_url, loglevel)
    except ValueError as exc:
        raise Misconfigured(str(exc)) from None
    except redis.exceptions.NoPermissionError as exc:
        raise Unreachable(no_permission_line(exc, settings)) from None
    except redis.RedisError as exc:
        raise Unreachable(
            f"Redis unreachable at {masked(settings.redis_url)}: {exc}; check DRIFTLINE_REDIS_URL"
        ) from None
    except BrokerUnreachable as exc:
        raise Unreachable(f"{exc}; check DRIFTLINE_BROKER_URL") from None
    except BindError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), help="Events per second (default: as fast as possible)."
)
@click.option(
    "--topic",
    "topic_name",
    default="events",
    show_default=True,
    type=click.Choice(["events", "labels"]),
    help="Contract topic to publish to.",
)
def produce(path: Path, rate: float | None, topic_name: str) -> None:
    """Publish a JSONL or CSV file of events (or labels) with a progress bar."""
    import asyncio

    from aiokafka.errors import KafkaError
    from rich.console import Console
    from rich.progress import Progress

    from driftline.streams.connections import kafka_kwargs
    from driftline.streams.producer import message_key, publish, read_messages
    from driftline.streams.publisher import producer_for
    from driftline.streams.topics import ensure_topics

    settings = load_settings()
    if settings.broker_url is None:
        raise not_set("DRIFTLINE_BROKER_URL", "events are published there")
    try:
        messages = list(read_messages(path))
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    require_broker(settings)

    async def run() -> int:
        await ensure_topics(settings, settings.broker_url)
        producer = producer_for(kafka_kwargs(settings, settings.broker_url))
        label_key = settings.model_name.encode()
        keyed = [(message_key(m) if topic_name == "events" else label_key, m) for m in messages]
        try:
            await producer.start()
            with Progress(console=Console(stderr=True)) as progress:
                task = progress.add_task(f"publishing to {settings.topic(topic_name)}", total=len(keyed))
                return await publish(
                    producer, settings.topic(topic_name), keyed, rate, on_sent=lambda n: progress.advance(task, n)
                )
        finally:
            await producer.stop()

    try:
        sent = asyncio.run(run())
    except KafkaError as exc:
        raise click.ClickException(f"broker {settings.broker_url}: {exc}") from None
    click.echo(f"published {sent} messages to {settings.topic(topic_name)}")
