"""confluent-kafka (librdkafka) for the bulk output of a :class:`~driftline.streams.publisher.Publisher`
(predictions, the monitor feed, reviews) when ``DRIFTLINE_KAFKA_CLIENT`` is ``confluent``.

Each record is handed to librdkafka with one call (it batches, compresses and sends in its own threads); one
future per :meth:`ConfluentProducer.send_many` call completes once every record of it is acknowledged (acks=all),
or fails with aiokafka's :class:`KafkaError` (what the batch source already handles: it reads the batch again).
Partitions are Kafka's default partitioner's (murmur2 of the key, as aiokafka's and the Java client's), so a key's
records land where the aiokafka producer would put them. One request in flight per broker keeps each partition's
records in order across retries (a broker restart), as aiokafka's one batch per partition at a time does.
Idempotence is off: when the embedded broker restarted empty (it forgets producer ids), librdkafka's idempotent
producer failed fatally and never sent again.

Acknowledgements are served by a thread of its own (``poll``), which completes the futures on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any

import confluent_kafka as ck
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

#: How long a poll for acknowledgements waits when none come (the thread then checks whether to stop).
POLL_SECONDS = 0.05
#: Pause before handing a record over again while librdkafka's local queue is full.
QUEUE_FULL_PAUSE = 0.01
#: How long :meth:`ConfluentProducer.stop` waits for what is still unacknowledged.
STOP_FLUSH_SECONDS = 30.0


class ConfluentProducer:
    """Keyed records handed to librdkafka in bulk; ``config`` adds to or overrides :data:`PRODUCER_DEFAULTS`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = {**PRODUCER_DEFAULTS, **config}
        self._producer: ck.Producer | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()

    async def start(self) -> None:
        self._producer = ck.Producer(self.config, logger=log)
        self._poller = threading.Thread(target=self._poll, name="kafka-acks", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        """Serve acknowledgements (delivery callbacks) until :meth:`stop`."""
        assert self._producer is not None
        while not self._stopping.is_set():
            self._producer.poll(POLL_SECONDS)

    async def send_many(self, topic: str, items: Sequence[tuple[bytes | None, bytes | None]]) -> asyncio.Future:
        """Hand ``items`` (key, value) over; the future of their acknowledgements (fails with the first error)."""
        assert self._producer is not None, "start() first"
        loop = asyncio.get_running_loop()
        acked: asyncio.Future = loop.create_future()
        if not items:
            acked.set_result(None)
            return acked
        left = len(items)

        def settle(error: BaseException | None) -> None:  # on the event loop
            if not acked.done():
                acked.set_result(None) if error is None else acked.set_exception(error)

        def delivered(error: ck.KafkaError | None, _message: ck.Message) -> None:  # on the poll thread
            nonlocal left
            if error is not None:
                if left > 0:
                    left = -1
                    _call_soon(loop, settle, KafkaError(f"not acknowledged by {topic}: {error.str()}"))
                return
            left -= 1
            if left == 0:
                _call_soon(loop, settle, None)

        produce = self._producer.produce
        for key, value in items:
            while True:
                try:
                    produce(topic, value, key, on_delivery=delivered)
                    break
                except BufferError:  # librdkafka's queue is full: wait for acknowledgements to make room
                    await asyncio.sleep(QUEUE_FULL_PAUSE)
                except ck.KafkaException as exc:  # refused before sending (e.g. too large): the batch fails
                    left = -1
                    settle(KafkaError(f"not sent to {topic}: {exc}"))
                    return acked
        return acked

    async def stop(self) -> None:
        """Wait (a while) for what is unacknowledged, then stop serving acknowledgements."""
        if self._producer is not None:
            left = await asyncio.to_thread(self._producer.flush, STOP_FLUSH_SECONDS)
            if left:
                log.warning("producer stopped with %d records unacknowledged", left)
        self._stopping.set()
        if self._poller is not None:
            await asyncio.to_thread(self._poller.join)


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, *args: object) -> None:
    """``callback(*args)`` on ``loop`` from another thread (dropped when the loop is closed already)."""
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for this acknowledgement any more
        loop.call_soon_threadsafe(callback, *args)


#: librdkafka's producer properties for the prediction sink, beside the connection's: acks from every replica,
#: batches lingering a few ms (as the aiokafka producer's), the Java client's partitioner, per-partition order
#: (one request in flight; see the module docstring).
PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "linger.ms": 5,
    "batch.size": 256 * 1024,
    "partitioner": "murmur2_random",
    "enable.idempotence": False,
    "max.in.flight.requests.per.connection": 1,
}
