"""The dead-letter vocabulary, without pydantic (cheap to import): where a message was rejected and the headers
that say why (Kafka Connect style: the original value untouched, the reason in headers).

>>> from typing import get_args
>>> get_args(Stage)[:2], DLQ_STAGE
(('deserialize', 'validate'), 'dlq.stage')
"""

from __future__ import annotations

from typing import Literal

#: Where a message was dead-lettered; ``unexpected``: an exception nobody anticipated (a bug or a hostile value
#: nothing checked), its class and the last line of its traceback in the reason.
Stage = Literal["deserialize", "validate", "score", "learn", "join", "monitor", "unexpected"]

DLQ_SOURCE_TOPIC = "dlq.source.topic"
DLQ_SOURCE_PARTITION = "dlq.source.partition"
DLQ_SOURCE_OFFSET = "dlq.source.offset"
DLQ_STAGE = "dlq.stage"
DLQ_ERROR_CLASS = "dlq.error.class"
DLQ_ERROR_MESSAGE = "dlq.error.message"
#: Set when the dead letter carries only the head of the original value: the original size in bytes.
DLQ_VALUE_TRUNCATED = "dlq.value.truncated"
