"""Topic names of the contract and their creation with explicit partitions.

A broker auto-creates unknown topics with its own partition count, so every driftline topic is created up
front with ``settings.partitions``.

>>> from driftline.contract.settings import Settings
>>> topic_names(Settings(topic_prefix="x."))[:3]
['x.events', 'x.labels', 'x.predictions']
"""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from driftline.contract.settings import Settings
from driftline.streams.connections import kafka_kwargs

CONTRACT_TOPICS = ("events", "labels", "predictions", "alerts", "dead-letter", "review", "monitor")


def topic_names(settings: Settings) -> list[str]:
    """Full names of every contract topic."""
    return [settings.topic(name) for name in CONTRACT_TOPICS]


async def ensure_topics(settings: Settings, bootstrap: str, names: list[str] | None = None) -> None:
    """Create the contract topics (or ``names``) with ``settings.partitions`` partitions if missing."""
    names = names or topic_names(settings)
    admin = AIOKafkaAdminClient(**kafka_kwargs(settings, bootstrap))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            new = [NewTopic(n, settings.partitions, settings.replication_factor) for n in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker created it first
                await admin.create_topics(new)
    finally:
        await admin.close()
