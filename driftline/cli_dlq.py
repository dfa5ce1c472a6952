"""`driftline dlq`: read the dead-letter topic and replay its messages after a fix.

``replay`` re-publishes each dead letter's original key and value, untouched, to the topic named in its
``dlq.source.topic`` header, with a ``dlq.replayed`` count header, and commits its progress in its own
consumer group: a finished replay is not repeated. ``inspect`` only reads (no group, nothing committed).

Both need a running broker (``DRIFTLINE_BROKER_URL``): the embedded demo's dead-letter topic lives only as
long as the demo.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import click
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from driftline.cli_support import Unreachable, load_settings, require_broker
from driftline.contract.settings import Settings
from driftline.streams.connections import kafka_kwargs
from driftline.streams.dlq import (
    DEFAULT_MAX_REPLAYS,
    STAGES,
    DeadLetterInfo,
    ReplayCounts,
    ReplayPolicy,
    describe,
    format_line,
    replay_group_id,
    replay_headers,
)

StopReason = Literal["drained", "max", "timeout", "missing"]
FETCH_RECORDS = 500
T = TypeVar("T")


def broker_settings(topic_prefix: str | None = None) -> tuple[Settings, str]:
    """Settings from the environment and the broker URL, once the broker answered; one line (exit 2) if unusable."""
    settings = load_settings()
    if topic_prefix is not None:
        settings = settings.model_copy(update={"topic_prefix": topic_prefix})
    if settings.broker_url is None:
        raise Unreachable(
            "DRIFTLINE_BROKER_URL is not set: `driftline dlq` reads the dead-letter topic of a running broker"
        )
    return settings, require_broker(settings)


def run_on_broker(bootstrap: str, work: Coroutine[Any, Any, T]) -> T:
    """Run ``work``; a Kafka error becomes a one-line :class:`click.ClickException` naming the broker."""
    try:
        return asyncio.run(work)
    except KafkaError as exc:
        text = str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}"
        raise click.ClickException(f"broker {bootstrap}: {text}") from exc


@dataclass
class _Reader:
    """A consumer assigned every partition of one topic, reading until it has caught up with the end offsets
    it saw at the start, read ``limit`` messages, or passed its deadline."""

    consumer: AIOKafkaConsumer
    partitions: list[TopicPartition]
    end: dict[TopicPartition, int]
    limit: int | None
    deadline: float
    read: int = 0
    stopped: StopReason | None = None

    async def caught_up(self) -> bool:
        for tp in self.partitions:
            if await self.consumer.position(tp) < self.end[tp]:
                return False
        return True

    async def batches(self) -> AsyncIterator[list[ConsumerRecord]]:
        """Batches in offset order per partition; sets :attr:`stopped` when done."""
        while True:
            if self.limit is not None and self.read >= self.limit:
                self.stopped = "max"
                return
            if await self.caught_up():
                self.stopped = "drained"
                return
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.stopped = "timeout"
                return
            want = FETCH_RECORDS if self.limit is None else min(FETCH_RECORDS, self.limit - self.read)
            fetched = await self.consumer.getmany(timeout_ms=int(min(remaining, 1.0) * 1000), max_records=want)
            batch = [record for tp in sorted(fetched) for record in fetched[tp] if record.offset < self.end[tp]]
            if batch:
                self.read += len(batch)
                yield batch


@asynccontextmanager
async def _reader(
    settings: Settings, bootstrap: str, topic: str, group_id: str | None, limit: int | None, timeout: float
) -> AsyncIterator[_Reader | None]:
    """A started :class:`_Reader` of ``topic`` (None when the topic does not exist); stopped on exit."""
    deadline = time.monotonic() + timeout
    consumer = AIOKafkaConsumer(
        **kafka_kwargs(settings, bootstrap),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        request_timeout_ms=max(30_000, settings.session_timeout_ms + 5_000),
    )
    try:
        await consumer.start()
        if topic not in await consumer.topics():
            yield None
            return
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        # Manual assignment: no group join (fast), offsets still committed under ``group_id``.
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        yield _Reader(consumer, partitions, end, limit, deadline)
    finally:
        await consumer.stop()


async def replay_dead_letters(
    settings: Settings,
    bootstrap: str,
    policy: ReplayPolicy,
    group_id: str,
    limit: int | None,
    timeout: float,
    dry_run: bool,
    on_message: Callable[[dict[str, Any], str], None] | None = None,
) -> tuple[ReplayCounts, StopReason]:
    """Replay the dead-letter topic once; return the counts and why it stopped.

    Each batch is re-published and acknowledged by the broker before the batch's offsets are committed
    (at least once: a crash in between replays that batch again). A dry run neither sends nor commits.
    """
    topic = policy.dead_letter_topic
    counts = ReplayCounts()
    async with _reader(settings, bootstrap, topic, group_id, limit, timeout) as reader:
        if reader is None:
            return counts, "missing"
        producer = None if dry_run else AIOKafkaProducer(**kafka_kwargs(settings, bootstrap), acks="all")
        try:
            if producer is not None:
                await producer.start()
            async for batch in reader.batches():
                deliveries = []
                for record in batch:
                    letter = DeadLetterInfo.from_headers(record.headers)
                    decision = policy.decide(letter)
                    target = letter.source_topic if decision == "replay" else None
                    counts.add(decision, target)
                    if on_message is not None:
                        on_message(_describe(record), decision)
                    if producer is not None and target is not None:
                        deliveries.append(
                            await producer.send(
                                target, value=record.value, key=record.key, headers=replay_headers(letter)
                            )
                        )
                if producer is not None:
                    await asyncio.gather(*deliveries)
                    last: dict[TopicPartition, int] = {}
                    for record in batch:
                        last[TopicPartition(record.topic, record.partition)] = record.offset + 1
                    await reader.consumer.commit(last)
        finally:
            if producer is not None:
                await producer.stop()
        assert reader.stopped is not None
        return counts, reader.stopped


async def read_dead_letters(
    settings: Settings, bootstrap: str, topic: str, limit: int | None, timeout: float, stages: frozenset[str]
) -> tuple[list[dict[str, Any]], StopReason]:
    """Descriptions of up to ``limit`` dead letters (of ``stages``, if any), oldest first per partition."""
    found: list[dict[str, Any]] = []
    async with _reader(settings, bootstrap, topic, None, None, timeout) as reader:
        if reader is None:
            return found, "missing"
        async for batch in reader.batches():
            for record in batch:
                description = _describe(record)
                if not stages or description["stage"] in stages:
                    found.append(description)
                if limit is not None and len(found) >= limit:
                    return found, "max"
        assert reader.stopped is not None
        return found, reader.stopped


def _describe(record: ConsumerRecord) -> dict[str, Any]:
    return describe(
        record.topic, record.partition, record.offset, record.timestamp, record.key, record.value, record.headers
    )


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
    settings, bootstrap = broker_settings(topic_prefix)
    topic = settings.topic("dead-letter")
    found, stopped = run_on_broker(
        bootstrap, read_dead_letters(settings, bootstrap, topic, limit, timeout, frozenset(stages))
    )
    for description in found:
        click.echo(json.dumps(description, sort_keys=True) if as_json else format_line(description))
    if not as_json:
        click.echo(f"{topic}: {len(found)} shown; {_STOPPED[stopped]}", err=True)
