"""Dead-letter records: the original bytes untouched, the reason in headers (Kafka Connect style).

An original larger than :data:`MAX_DEAD_LETTER_VALUE_BYTES` could exceed what the worker's producer may send
(a dead letter that cannot be sent would stop its stage): its dead letter carries the head of the value and says
so (``dlq.value.truncated``: the original size); the source offset still points at the whole original.

>>> headers = dead_letter_headers("x.events", 3, 42, "validate", "ValidationError", "ts: bad")
>>> dict(headers)["dlq.stage"], dict(headers)["dlq.source.offset"]
(b'validate', b'42')
>>> letter = DeadLetter("x.events", 0, 7, b"k", b"v" * (MAX_DEAD_LETTER_VALUE_BYTES + 1), "validate", "E", "m")
>>> len(letter.sent_value) == MAX_DEAD_LETTER_VALUE_BYTES, dict(letter.headers())["dlq.value.truncated"]
(True, b'3145729')
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from driftline.contract.records import (
    DLQ_ERROR_CLASS,
    DLQ_ERROR_MESSAGE,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_STAGE,
    DLQ_VALUE_TRUNCATED,
    Stage,
)

MAX_REASON_CHARS = 1000
#: A dead letter carries at most this much of the original value, and of its key (cut without a header: a key
#: this large is not a key anyone reads); with the reason headers it stays under the producer's 4 MiB requests.
MAX_DEAD_LETTER_VALUE_BYTES = 3 * 1024 * 1024
MAX_DEAD_LETTER_KEY_BYTES = 64 * 1024


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

    @property
    def sent_value(self) -> bytes | None:
        """The value the dead letter carries: the original, or its head when it is too large to send."""
        return self.value[:MAX_DEAD_LETTER_VALUE_BYTES] if self.value is not None else None

    @property
    def sent_key(self) -> bytes | None:
        return self.key[:MAX_DEAD_LETTER_KEY_BYTES] if self.key is not None else None

    def headers(self) -> list[tuple[str, bytes]]:
        reason = dead_letter_headers(
            self.topic, self.partition, self.offset, self.stage, self.error_class, self.message
        )
        cut = self.value is not None and len(self.value) > MAX_DEAD_LETTER_VALUE_BYTES
        size = [(DLQ_VALUE_TRUNCATED, str(len(self.value or b"")).encode())] if cut else []
        return [*reason, *size, *self.carried]


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


def unexpected_reason(exc: BaseException) -> tuple[str, str]:
    """Error class and reason of an exception no check anticipated (stage ``unexpected``): the traceback's last line.

    >>> unexpected_reason(OverflowError("int too large to convert to float"))
    ('OverflowError', 'OverflowError: int too large to convert to float')
    """
    return type(exc).__name__, traceback.format_exception_only(type(exc), exc)[-1].strip()
