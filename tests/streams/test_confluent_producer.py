"""ConfluentProducer without a broker: a record refused before sending, or never acknowledged, fails the future of
its ``send_many`` call with aiokafka's KafkaError (what the batch source handles by reading the batch again)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaError

from driftline.streams.confluent_producer import ConfluentProducer

#: No broker listens here (port 1 is privileged and unused on loopback).
NOWHERE = "127.0.0.1:1"


def _fails(config: dict, items: list[tuple[bytes, bytes]]) -> str:
    """The error the acknowledgements of ``items`` fail with."""

    async def scenario() -> str:
        producer = ConfluentProducer({"bootstrap.servers": NOWHERE, **config})
        await producer.start()
        try:
            acked = await producer.send_many("t", items)
            with pytest.raises(KafkaError) as failed:
                await asyncio.wait_for(acked, 30)
            return str(failed.value)
        finally:
            await producer.stop()

    return asyncio.run(scenario())


def test_a_record_too_large_to_send_fails_the_call_it_came_with() -> None:
    assert "not sent to t" in _fails(
        {"message.max.bytes": 1000, "message.timeout.ms": 200}, [(b"k", b"v"), (b"k", b"x" * 5000)]
    )


def test_records_never_acknowledged_fail_the_call_once_their_delivery_times_out() -> None:
    assert "not acknowledged by t" in _fails({"message.timeout.ms": 200}, [(b"k", b"v")] * 3)


def test_an_empty_call_is_acknowledged_at_once() -> None:
    async def scenario() -> None:
        producer = ConfluentProducer({"bootstrap.servers": NOWHERE})
        await producer.start()
        try:
            assert (await producer.send_many("t", [])).done()
        finally:
            await producer.stop()

    asyncio.run(scenario())
