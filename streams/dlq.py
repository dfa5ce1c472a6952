"""Pure helpers of dead-letter replay and inspection: read the reason headers, decide what to replay, count.

A dead letter carries the original bytes untouched and the reason in headers (:mod:`driftline.streams.deadletter`).
Replaying re-publishes the original key and value to the topic named in ``dlq.source.topic`` with one header,
``dlq.replayed``, counting how often the message has been replayed. A dead-letter writer that copies that
header from the message it rejects (:func:`carry_replay_count`) lets the next replay see a loop and stop.

Examples
--------
>>> headers = [("dlq.source.topic", b"acme.events"), ("dlq.stage", b"validate"),
...            ("dlq.error.class", b"ValidationError"), ("dlq.error.message", b"ts: bad")]
>>> letter = DeadLetterInfo.from_headers(headers)
>>> letter.source_topic, letter.stage, letter.replay_count
('acme.events', 'validate', 0)
>>> policy = ReplayPolicy(prefix="acme.", dead_letter_topic="acme.dead-letter", stages=frozenset({"validate"}))
>>> policy.decide(letter)
'replay'
>>> replay_headers(letter)
[('dlq.replayed', b'1')]
>>> policy.decide(DeadLetterInfo.from_headers([*headers, ("dlq.replayed", b"3")]))
'skip_loop'
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from driftline.contract.headers import (
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_STAGE,
    DLQ_VALUE_TRUNCATED,
    Stage,
)

#: Header on a replayed message (and, carried over, on its dead letter): how often it has been replayed.
DLQ_REPLAYED = "dlq.replayed"
#: Every stage a dead letter can name.
STAGES: tuple[str, ...] = get_args(Stage)
#: A dead letter replayed this many times already is skipped: replaying it again would loop.
DEFAULT_MAX_REPLAYS = 3

Headers = Sequence[tuple[str, bytes]]
Decision = Literal["replay", "skip_stage", "skip_no_source", "skip_foreign_topic", "skip_loop", "skip_truncated"]


def header(headers: Headers | None, name: str) -> str | None:
    """The last value of header ``name`` as text (undecodable bytes replaced), or None when absent.

    >>> header([("a", b"1"), ("a", b"2")], "a"), header([], "a"), header([("a", None)], "a")
    ('2', None, '')
    """
    found = None
    for key, value in headers or ():
        if key == name:
            found = (value or b"").decode("utf-8", "replace")
    return found


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class DeadLetterInfo:
    """The reason headers of one dead letter, parsed leniently (a missing or bad header becomes None)."""

    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    stage: str | None
    error_class: str | None
    error_message: str | None
    replay_count: int = 0
    #: Size of the original value when the dead letter carries only its head (None: the whole value).
    truncated_from: int | None = None

    @classmethod
    def from_headers(cls, headers: Headers | None) -> DeadLetterInfo:
        """Parse the ``dlq.*`` headers.

        >>> DeadLetterInfo.from_headers([("dlq.source.partition", b"x"), ("dlq.replayed", b"2")])
        DeadLetterInfo(source_topic=None, source_partition=None, source_offset=None, stage=None, \
error_class=None, error_message=None, replay_count=2, truncated_from=None)
        """
        return cls(
            source_topic=header(headers, DLQ_SOURCE_TOPIC) or None,
            source_partition=_int_or_none(header(headers, DLQ_SOURCE_PARTITION)),
            source_offset=_int_or_none(header(headers, DLQ_SOURCE_OFFSET)),
            stage=header(headers, DLQ_STAGE),
            error_class=header(headers, DLQ_ERROR_CLASS),
            error_message=header(headers, DLQ_ERROR_MESSAGE),
            replay_count=max(0, _int_or_none(header(headers, DLQ_REPLAYED)) or 0),
            truncated_from=_int_or_none(header(headers, DLQ_VALUE_TRUNCATED)),
        )


def replay_headers(letter: DeadLetterInfo) -> list[tuple[str, bytes]]:
    """Headers of the re-published message: the replay count, one more than the dead letter carried."""
    return [(DLQ_REPLAYED, str(letter.replay_count + 1).encode())]


def carry_replay_count(source_headers: Headers | None) -> list[tuple[str, bytes]]:
    """The ``dlq.replayed`` header to copy from a rejected message onto its dead letter (empty if none).

    >>> carry_replay_count([("dlq.replayed", b"1"), ("other", b"x")]), carry_replay_count(None)
    ([('dlq.replayed', b'1')], [])
    """
    value = header(source_headers, DLQ_REPLAYED)
    return [] if value is None else [(DLQ_REPLAYED, value.encode())]


@dataclass(frozen=True)
class ReplayPolicy:
    """Which dead letters a replay re-publishes.

    A dead letter is replayed when its stage is selected (no stages: all), its source topic is a driftline
    topic of this prefix other than the dead-letter topic itself, it was replayed fewer than ``max_replays``
    times, and it carries the whole original value (a truncated one would be replayed as a different message;
    its source offset says where the original is).

    >>> p = ReplayPolicy(prefix="acme.", dead_letter_topic="acme.dead-letter")
    >>> p.decide(DeadLetterInfo("acme.dead-letter", 0, 1, "score", "E", "m"))
    'skip_foreign_topic'
    >>> p.decide(DeadLetterInfo("other.events", 0, 1, "score", "E", "m"))
    'skip_foreign_topic'
    >>> p.decide(DeadLetterInfo(None, None, None, "score", "E", "m"))
    'skip_no_source'
    """

    prefix: str
    dead_letter_topic: str
    stages: frozenset[str] = frozenset()
    max_replays: int = DEFAULT_MAX_REPLAYS

    def decide(self, letter: DeadLetterInfo) -> Decision:
        """Replay, or the reason to skip."""
        if self.stages and letter.stage not in self.stages:
            return "skip_stage"
        if not letter.source_topic:
            return "skip_no_source"
        if not letter.source_topic.startswith(self.prefix) or letter.source_topic == self.dead_letter_topic:
            return "skip_foreign_topic"
        if letter.replay_count >= self.max_replays:
            return "skip_loop"
        if letter.truncated_from is not None:
            return "skip_truncated"
        return "replay"


def replay_group_id(prefix: str, stages: Iterable[str] = ()) -> str:
    """Consumer group of a replay: one per stage selection, so replaying one stage leaves the others.

    >>> replay_group_id("acme."), replay_group_id("acme.", ["validate", "deserialize"])
    ('acme.dlq-replay', 'acme.dlq-replay.deserialize+validate')
    """
    chosen = sorted(set(stages))
    return f"{prefix}dlq-replay" + (f".{'+'.join(chosen)}" if chosen else "")


@dataclass
class ReplayCounts:
    """What a replay did: messages read, replayed (per target topic) and skipped (per reason).

    >>> c = ReplayCounts()
    >>> c.add("replay", "acme.events"); c.add("skip_stage", None); c.add("replay", "acme.labels")
    >>> c.consumed, c.replayed, c.summary()
    (3, 2, 'read 3, replayed 2 (acme.events 1, acme.labels 1), skipped 1 (stage 1)')
    """

    consumed: int = 0
    targets: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def replayed(self) -> int:
        return sum(self.targets.values())

    def add(self, decision: Decision, target: str | None) -> None:
        """Count one dead letter and what was decided for it."""
        self.consumed += 1
        if decision == "replay" and target is not None:
            self.targets[target] += 1
        else:
            self.skipped[decision.removeprefix("skip_")] += 1

    def summary(self) -> str:
        """One human-readable line."""
        line = f"read {self.consumed}, replayed {self.replayed}"
        if self.targets:
            line += " (" + ", ".join(f"{t} {n}" for t, n in sorted(self.targets.items())) + ")"
        skipped = sum(self.skipped.values())
        line += f", skipped {skipped}"
        if skipped:
            line += " (" + ", ".join(f"{r} {n}" for r, n in sorted(self.skipped.items())) + ")"
        return line

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready counts."""
        return {
            "consumed": self.consumed,
            "replayed": self.replayed,
            "targets": dict(sorted(self.targets.items())),
            "skipped": dict(sorted(self.skipped.items())),
        }


def describe(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None,
) -> dict[str, Any]:
    """A JSON-ready description of one dead letter: where it is, where it came from, why, and its bytes.

    The value is given as text when it is UTF-8, else base64 (``value_encoding`` says which).

    >>> d = describe("acme.dead-letter", 0, 7, 1, None, b"\\xff", [("dlq.stage", b"deserialize")])
    >>> d["stage"], d["value"], d["value_encoding"], d["value_bytes"]
    ('deserialize', '/w==', 'base64', 1)
    """
    letter = DeadLetterInfo.from_headers(headers)
    value_text, encoding = _text_or_base64(value)
    key_text, key_encoding = _text_or_base64(key)
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp_ms": timestamp_ms,
        "source_topic": letter.source_topic,
        "source_partition": letter.source_partition,
        "source_offset": letter.source_offset,
        "stage": letter.stage,
        "error_class": letter.error_class,
        "error_message": letter.error_message,
        "replay_count": letter.replay_count,
        "key": key_text,
        "key_encoding": key_encoding,
        "value": value_text,
        "value_encoding": encoding,
        "value_bytes": None if value is None else len(value),
        "value_truncated_from": letter.truncated_from,
    }


def _text_or_base64(raw: bytes | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def format_line(description: dict[str, Any], preview_chars: int = 120) -> str:
    """One line of ``driftline dlq inspect``: position, origin, reason and a preview of the value.

    >>> d = describe("acme.dead-letter", 1, 7, None, None, b'{"event_id": 1}',
    ...              [("dlq.source.topic", b"acme.events"), ("dlq.source.partition", b"2"),
    ...               ("dlq.source.offset", b"9"), ("dlq.stage", b"validate"),
    ...               ("dlq.error.class", b"ValidationError"), ("dlq.error.message", b"event_id: bad")])
    >>> print(format_line(d))
    1:7 from acme.events[2]@9 validate ValidationError: event_id: bad | {"event_id": 1}
    """
    origin = f"{description['source_topic'] or '?'}[{_or_q(description['source_partition'])}]"
    origin += f"@{_or_q(description['source_offset'])}"
    reason = f"{description['stage'] or '?'} {description['error_class'] or '?'}: {description['error_message'] or ''}"
    value = description["value"]
    if value is None:
        preview = "<no value>"
    else:
        preview = value if description["value_encoding"] == "utf-8" else f"base64:{value}"
        if len(preview) > preview_chars:
            preview = preview[:preview_chars] + f"... ({description['value_bytes']} bytes)"
    replayed = f" replayed {description['replay_count']}x" if description["replay_count"] else ""
    if description["value_truncated_from"] is not None:
        preview += f" [first {description['value_bytes']} of {description['value_truncated_from']} bytes]"
    return f"{description['partition']}:{description['offset']} from {origin} {reason}{replayed} | {preview}"


def _or_q(value: Any) -> str:
    return "?" if value is None else str(value)
