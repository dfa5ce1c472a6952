"""Dead-letter records: the original bytes untouched, the reason in headers (Kafka Connect style).

>>> headers = dead_letter_headers("x.events", 3, 42, "validate", "ValidationError", "ts: bad")
>>> dict(headers)["dlq.stage"], dict(headers)["dlq.source.offset"]
(b'validate', b'42')
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.records import (
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_STAGE,
    Stage,
)

MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class DeadLetter:
    """A message that could not be processed and why."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    stage: Stage
    error_class: str
    message: str
    #: Headers carried over from the original record (the replay count, so replay loops stay bounded).
    carried: tuple[tuple[str, bytes], ...] = ()

    def headers(self) -> list[tuple[str, bytes]]:
        reason = dead_letter_headers(
            self.topic, self.partition, self.offset, self.stage, self.error_class, self.message
        )
        return [*reason, *self.carried]


def dead_letter_headers(
    topic: str, partition: int, offset: int, stage: Stage, error_class: str, message: str
) -> list[tuple[str, bytes]]:
    """Kafka headers that say where a dead letter came from and why it was rejected."""
    return [
        (DLQ_SOURCE_TOPIC, topic.encode()),
        (DLQ_SOURCE_PARTITION, str(partition).encode()),
        (DLQ_SOURCE_OFFSET, str(offset).encode()),
        (DLQ_STAGE, stage.encode()),
        (DLQ_ERROR_CLASS, error_class.encode()),
        (DLQ_ERROR_MESSAGE, message[:MAX_REASON_CHARS].encode("utf-8", "replace")),
    ]
