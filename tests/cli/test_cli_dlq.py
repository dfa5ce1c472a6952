"""`driftline dlq replay` / `inspect` against the real embedded broker: originals land byte-for-byte."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from click.testing import CliRunner, Result

from driftline.cli import main
from driftline.contract.settings import Settings
from driftline.embedded.stack import free_port
from driftline.streams.deadletter import dead_letter_headers
from driftline.streams.dlq import DLQ_REPLAYED, header
from driftline.streams.topics import ensure_topics

pytestmark = pytest.mark.integration

EVENT_OK_AFTER_FIX = b'{"event_id": "e1", "ts": 1700000000000, "features": {"x": 1.5}}'
LABEL_NOT_UTF8 = b'{"event_id": "e2", "label": "\xff\xfe"}'
EVENT_SCORE_FAILED = b'{"event_id": "e3", "ts": 1700000000000, "features": {"x": "big"}}'


def _env(settings: Settings) -> dict[str, str]:
    """The DRIFTLINE_* environment a user would export for these settings."""
    assert settings.broker_url and settings.redis_url and settings.model_hmac_key
    return {
        "DRIFTLINE_BROKER_URL": settings.broker_url,
        "DRIFTLINE_REDIS_URL": settings.redis_url,
        "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLINE_PARTITIONS": str(settings.partitions),
        "DRIFTLINE_MODEL_HMAC_KEY": settings.model_hmac_key.get_secret_value(),
    }


def _cli(settings: Settings, *args: str) -> Result:
    result = CliRunner().invoke(main, ["dlq", *args], env=_env(settings), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def _dead_letter(
    settings: Settings,
    source: str,
    offset: int,
    stage: str,
    error_class: str,
    message: str,
    extra: list[tuple[str, bytes]] | None = None,
) -> list[tuple[str, bytes]]:
    return [*dead_letter_headers(settings.topic(source), 1, offset, stage, error_class, message), *(extra or [])]


async def _put_dead_letters(settings: Settings, letters: list[tuple[bytes | None, bytes, list]]) -> None:
    assert settings.broker_url is not None
    await ensure_topics(settings, settings.broker_url)
    producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, acks="all", linger_ms=50)
    await producer.start()
    try:  # sent together, as a worker dead-letters: several letters per record batch
        topic = settings.topic("dead-letter")
        sent = [await producer.send(topic, value=value, key=key, headers=headers) for key, value, headers in letters]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _read_all(settings: Settings, name: str, expect: int, wait: float = 15.0) -> list:
    """Every message of topic ``name`` (all partitions, from the start); waits until ``expect`` arrived."""
    assert settings.broker_url is not None
    topic = settings.topic(name)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.broker_url, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(settings.partitions)])
        records: list = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            records += [r for rs in batch.values() for r in rs]
            if len(records) >= expect and not batch:
                break
        return records
    finally:
        await consumer.stop()


def test_replay_republishes_original_bytes_to_each_source_topic_only_for_the_chosen_stages(
    settings: Settings,
) -> None:
    """Three dead letters (validate on events, deserialize on labels with non-UTF-8 bytes, score on events);
    a replay of the validate and deserialize stages puts exactly those two originals, byte for byte and with
    their keys, on their source topics with dlq.replayed=1; the score one stays; a second run replays nothing."""
    asyncio.run(
        _put_dead_letters(
            settings,
            [
                (
                    b"k1",
                    EVENT_OK_AFTER_FIX,
                    _dead_letter(settings, "events", 10, "validate", "ValidationError", "x: bad"),
                ),
                (None, LABEL_NOT_UTF8, _dead_letter(settings, "labels", 11, "deserialize", "JSONDecodeError", "utf-8")),
                (b"k3", EVENT_SCORE_FAILED, _dead_letter(settings, "events", 12, "score", "TypeError", "str * float")),
            ],
        )
    )

    first = json.loads(
        _cli(settings, "replay", "--stage", "validate", "--stage", "deserialize", "--timeout", "30", "--json").output
    )
    assert first["consumed"] == 3 and first["replayed"] == 2 and first["stopped"] == "drained"
    assert first["targets"] == {settings.topic("events"): 1, settings.topic("labels"): 1}
    assert first["skipped"] == {"stage": 1}

    events = asyncio.run(_read_all(settings, "events", expect=1))
    labels = asyncio.run(_read_all(settings, "labels", expect=1))
    assert [(r.key, r.value) for r in events] == [(b"k1", EVENT_OK_AFTER_FIX)]
    assert [(r.key, r.value) for r in labels] == [(None, LABEL_NOT_UTF8)]
    assert header(events[0].headers, DLQ_REPLAYED) == "1" and header(labels[0].headers, DLQ_REPLAYED) == "1"

    again = json.loads(
        _cli(settings, "replay", "--stage", "validate", "--stage", "deserialize", "--timeout", "30", "--json").output
    )
    assert again["consumed"] == 0 and again["replayed"] == 0, "committed offsets must stop a repeat replay"
    assert len(asyncio.run(_read_all(settings, "events", expect=1, wait=2))) == 1


def test_replay_skips_a_letter_replayed_too_often_and_a_letter_naming_the_dead_letter_topic(
    settings: Settings,
) -> None:
    """A dead letter already replayed 3 times (a loop) and one whose source is the dead-letter topic itself
    are counted as skipped and never re-published; the healthy one next to them is."""
    asyncio.run(
        _put_dead_letters(
            settings,
            [
                (None, b"looping", _dead_letter(settings, "events", 1, "score", "E", "again", [(DLQ_REPLAYED, b"3")])),
                (None, b"self", _dead_letter(settings, "dead-letter", 2, "score", "E", "self")),
                (None, b"fine", _dead_letter(settings, "events", 3, "score", "E", "fixed", [(DLQ_REPLAYED, b"1")])),
            ],
        )
    )

    counts = json.loads(_cli(settings, "replay", "--max-replays", "3", "--timeout", "30", "--json").output)

    assert counts["replayed"] == 1 and counts["skipped"] == {"foreign_topic": 1, "loop": 1}
    events = asyncio.run(_read_all(settings, "events", expect=1))
    assert [(r.value, header(r.headers, DLQ_REPLAYED)) for r in events] == [(b"fine", "2")]


def test_dry_run_prints_what_would_be_replayed_and_leaves_both_topics_and_progress_untouched(
    settings: Settings,
) -> None:
    """--dry-run lists the dead letter, sends nothing and commits nothing: a real replay afterwards still
    re-publishes it."""
    asyncio.run(
        _put_dead_letters(
            settings,
            [
                (
                    None,
                    EVENT_OK_AFTER_FIX,
                    _dead_letter(settings, "events", 5, "validate", "ValidationError", "x: bad"),
                ),
            ],
        )
    )

    dry = _cli(settings, "replay", "--dry-run", "--timeout", "30").output
    origin = f"from {settings.topic('events')}[1]@5 validate ValidationError: x: bad"
    assert any(line.startswith("would replay: ") and origin in line for line in dry.splitlines()), dry
    assert "dry run: would have read 1, replayed 1" in dry
    assert asyncio.run(_read_all(settings, "events", expect=0, wait=2)) == []

    counts = json.loads(_cli(settings, "replay", "--timeout", "30", "--json").output)
    assert counts["replayed"] == 1
    assert [r.value for r in asyncio.run(_read_all(settings, "events", expect=1))] == [EVENT_OK_AFTER_FIX]


def test_replay_with_max_stops_after_n_and_the_next_run_continues_where_it_stopped(settings: Settings) -> None:
    """--max 2 over five dead letters on one partition replays two; the next run replays the other three,
    in their original order, and nothing twice."""
    asyncio.run(
        _put_dead_letters(
            settings,
            [(b"same-key", f"v{i}".encode(), _dead_letter(settings, "events", i, "score", "E", "m")) for i in range(5)],
        )
    )

    first = json.loads(_cli(settings, "replay", "--max", "2", "--timeout", "30", "--json").output)
    rest = json.loads(_cli(settings, "replay", "--timeout", "30", "--json").output)

    assert (first["replayed"], first["stopped"], rest["replayed"], rest["stopped"]) == (2, "max", 3, "drained")
    values = [r.value for r in asyncio.run(_read_all(settings, "events", expect=5))]
    assert values == [f"v{i}".encode() for i in range(5)]


def test_inspect_prints_each_dead_letter_with_its_reason_headers_and_value(settings: Settings) -> None:
    """inspect --json gives one object per dead letter with origin, stage, error and the value (text, or
    base64 for bytes that are not UTF-8); the text form shows the same on one line; nothing is committed."""
    asyncio.run(
        _put_dead_letters(
            settings,
            [
                (
                    None,
                    EVENT_OK_AFTER_FIX,
                    _dead_letter(settings, "events", 7, "validate", "ValidationError", "x: bad"),
                ),
                (None, LABEL_NOT_UTF8, _dead_letter(settings, "labels", 8, "deserialize", "JSONDecodeError", "utf-8")),
            ],
        )
    )

    lines = [json.loads(line) for line in _cli(settings, "inspect", "--json", "--timeout", "30").output.splitlines()]
    by_stage = {line["stage"]: line for line in lines}
    assert set(by_stage) == {"validate", "deserialize"}
    assert by_stage["validate"]["source_topic"] == settings.topic("events")
    assert (by_stage["validate"]["source_offset"], by_stage["validate"]["error_class"]) == (7, "ValidationError")
    assert by_stage["validate"]["value"].encode() == EVENT_OK_AFTER_FIX
    assert by_stage["deserialize"]["value_encoding"] == "base64"

    text = _cli(settings, "inspect", "--stage", "deserialize", "--timeout", "30").output
    assert f"from {settings.topic('labels')}[1]@8 deserialize JSONDecodeError: utf-8 | base64:" in text
    assert "validate" not in text
    # inspect read without a group: a replay afterwards still sees both dead letters.
    assert json.loads(_cli(settings, "replay", "--dry-run", "--json", "--timeout", "30").output)["consumed"] == 2


def test_replay_of_a_prefix_whose_dead_letter_topic_does_not_exist_says_so_and_exits_zero(
    settings: Settings,
) -> None:
    """A prefix nothing was ever dead-lettered under: replay reports the topic is missing, replays nothing."""
    result = _cli(settings, "replay", "--topic-prefix", f"{settings.topic_prefix}none.", "--timeout", "10")
    assert "read 0, replayed 0" in result.output and "the topic does not exist" in result.output


def test_dlq_commands_without_a_broker_url_fail_with_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """With DRIFTLINE_BROKER_URL unset (embedded defaults), replay and inspect exit non-zero with one line
    naming the variable, before touching any broker."""
    for name in ("DRIFTLINE_BROKER_URL", "DRIFTLINE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    for command in (["dlq", "replay"], ["dlq", "inspect"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 2
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "DRIFTLINE_BROKER_URL is not set" in lines[0], result.output


def test_dlq_replay_against_an_unreachable_broker_fails_with_one_line_naming_it() -> None:
    """A broker URL where nothing listens: exit 2 with an error naming the broker and the setting, no traceback."""
    address = f"127.0.0.1:{free_port()}"
    env = {"DRIFTLINE_BROKER_URL": address, "DRIFTLINE_MODEL_HMAC_KEY": "k"}
    result = CliRunner().invoke(main, ["dlq", "replay", "--timeout", "5"], env=env)
    assert result.exit_code == 2, result.output
    assert f"Error: no Kafka broker answered at {address} within 10 s (KafkaConnectionError" in result.output
    assert result.output.rstrip().endswith("check DRIFTLINE_BROKER_URL")
    assert "Traceback" not in result.output
