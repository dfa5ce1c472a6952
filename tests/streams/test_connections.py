"""Connections: log end offsets on the real embedded broker (the offset after the last record, whatever the record
batches), and the Redis clients against a real 3-master Redis Cluster (``DRIFTLINE_REDIS_CLUSTER``)."""

from __future__ import annotations

import asyncio

import pytest
import redis
from aiokafka import AIOKafkaProducer, TopicPartition
from redis.cluster import RedisCluster

from driftline.contract import keys
from driftline.contract.labelled import read_rows
from driftline.contract.settings import Settings
from driftline.embedded.stack import EmbeddedRedisCluster, free_port
from driftline.models.bootstrap import bootstrap_model
from driftline.models.registry import ModelRegistry
from driftline.streams.connections import (
    async_redis_client,
    get_many,
    kafka_kwargs,
    log_end_offsets,
    redis_client,
    write_many,
)
from driftline.streams.join_store import JoinStore
from driftline.streams.learner_state import LearnerStore
from driftline.streams.learning_stage import JoinRecord
from driftline.streams.redis_dedup import RedisDeduplicator
from driftline.streams.topics import ensure_topics
from driftline.streams.watch import Watch

pytestmark = pytest.mark.integration


def test_log_end_offsets_count_every_record_of_multi_record_batches(settings):
    topic = settings.topic("labels")
    full, single, empty = (TopicPartition(topic, p) for p in range(3))

    async def ends() -> dict[TopicPartition, int]:
        await ensure_topics(settings, settings.broker_url)
        producer = AIOKafkaProducer(bootstrap_servers=settings.broker_url, linger_ms=50)
        await producer.start()
        try:
            for count in (50, 30):  # two batches of many records: Tansu's ListOffsets says 51
                await asyncio.gather(
                    *[await producer.send(topic, b"x", partition=full.partition) for _ in range(count)]
                )
            for _ in range(3):
                await producer.send_and_wait(topic, b"y", partition=single.partition)
        finally:
            await producer.stop()
        return await log_end_offsets(kafka_kwargs(settings, settings.broker_url), [full, single, empty], 10.0)

    assert asyncio.run(ends()) == {full: 80, single: 3, empty: 0}


def test_write_many_reads_every_reply_and_raises_the_first_error_after_them(settings):
    """One round trip: the commands after an error reply still run, the error is raised once every reply is read,
    and the connection goes on answering its own commands (no reply left behind for the next caller)."""

    async def run() -> tuple[list, str]:
        client = async_redis_client(settings, settings.redis_url)
        p = settings.redis_prefix
        try:
            with pytest.raises(redis.ResponseError) as raised:
                await write_many(
                    client,
                    [
                        ("HSET", f"{p}h", "a", b"1", "b", 2),
                        ("SET", f"{p}s", "text"),
                        ("HINCRBY", f"{p}s", "x", 1),  # WRONGTYPE: a string, not a hash
                        ("HINCRBY", f"{p}h", "b", 5),
                        ("EXPIRE", f"{p}h", 60),
                    ],
                )
            await write_many(client, [])
            answers = [await client.hgetall(f"{p}h"), await client.get(f"{p}s"), await client.pttl(f"{p}h")]
            return answers, str(raised.value)
        finally:
            await client.aclose()

    (fields, text, ttl), error = asyncio.run(run())
    assert fields == {b"a": b"1", b"b": b"7"} and text == b"text" and 0 < ttl <= 60_000
    assert "WRONGTYPE" in error


# --- Redis Cluster --------------------------------------------------------------------------------


@pytest.fixture
def cluster_settings(settings: Settings, redis_cluster: EmbeddedRedisCluster) -> Settings:
    """The test's settings pointed at the 3-master Redis Cluster."""
    return settings.model_copy(update={"redis_url": redis_cluster.url, "redis_cluster": True})


def test_with_redis_cluster_set_the_clients_speak_cluster_and_each_models_keys_sit_on_one_node(
    cluster_settings, redis_cluster
):
    client = redis_client(cluster_settings, cluster_settings.redis_url)
    assert isinstance(client, RedisCluster) and len(client.get_primaries()) == 3
    prefix, names = cluster_settings.redis_prefix, [f"model-{i}" for i in range(12)]
    homes = {name: {redis_cluster.node_of(k).port for k in model_keys(prefix, name)} for name in names}
    assert all(len(ports) == 1 for ports in homes.values()), "every key of a model on its node"
    assert len(set().union(*homes.values())) == 3, "the models spread over the three masters"
    client.close()


def model_keys(prefix: str, name: str) -> list[str]:
    return [
        keys.model(prefix, name, "current"),
        keys.model(prefix, name, "blob:7"),
        keys.learner(prefix, name),
        keys.labelled(prefix, name),
        keys.labelled_rows(prefix, name),
        keys.join_slices(prefix, name),
        keys.join_layout(prefix, name, 7),
        keys.monitor(prefix, name, "scoring"),
    ]


def test_every_multi_key_operation_runs_on_a_3_master_redis_cluster(cluster_settings, redis_cluster):
    """Registration and promotion transactions, the learner's checkpoint transaction, the join records (a
    pipeline over the masters), the alert claim script, the thresholds of several models: each was refused
    (CROSSSLOT) before the keys carried the model's hash tag."""
    settings = cluster_settings
    client = redis_client(settings, settings.redis_url)
    registry = ModelRegistry(client, settings.keyring(), prefix=settings.redis_prefix)
    model, schema, task = bootstrap_model(samples=200)
    for parent in (None, 1):
        registry.register(settings.model_name, model, schema=schema, task=task, parent=parent)
    registry.rollback(settings.model_name)
    registry.promote(settings.model_name, 2)
    registry.set_challenger(settings.model_name, 1)
    assert registry.replace_challenger(settings.model_name, 1, 2)
    assert registry.history(settings.model_name) == [1, 2] and registry.load(settings.model_name)[0].version == 2
    assert registry.names() == [settings.model_name]
    for parent in (2, 3, 4):
        registry.register(settings.model_name, model, schema=schema, task=task, parent=parent, promote=False)
    assert registry.prune(settings.model_name, keep=1) == [3, 4], "a watched transaction on one slot"
    dedup = RedisDeduplicator(client, keys.alert_dedup(settings.redis_prefix))
    assert dedup.first("k", 1000, 5) and not dedup.first("k", 1000, 6) and dedup.fallbacks == 0
    client.set(keys.threshold(settings.redis_prefix, "b"), "0.4")
    assert get_many(client, [keys.threshold(settings.redis_prefix, n) for n in ("a", "b", "c")]) == [None, b"0.4", None]

    async def stream_side() -> None:
        aclient = async_redis_client(settings, settings.redis_url)
        joins = JoinStore(aclient, settings.redis_prefix, ttl_seconds=60)
        records = [(f"e{i}", JoinRecord({"x": float(i)}, True, {"True": 0.9}, 0.9, 2, 10)) for i in range(50)]
        await joins.put_many(settings.model_name, records)
        assert joins.buffered == 0, "the writes ran"
        ids = [f"e{i}" for i in range(50)]
        found = await joins.lookup(settings.model_name, [*ids, "nope"], [5] * 51)
        assert [f[1].x["x"] if f else None for f in found] == [float(i) for i in range(50)] + [None]
        homes = {redis_cluster.node_of(f[0]).port for f in found[:50] if f}
        assert len(homes) == 3, "one model's join records spread over the three masters"
        await joins.delete([(f[0], e) for f, e in zip(found, ids, strict=False) if f])
        assert await joins.get_many(settings.model_name, ids, [5] * 50) == [None] * 50
        watch = Watch("learning", settings, registry, client, dedup)
        store = LearnerStore(settings, registry, aclient, watch)
        state = await store.load(settings.model_name)
        assert state is not None and state.learner.learn("e1", {"x": 1.0}, True, True, {"True": 0.8, "False": 0.2})
        state.learner.mark_offset(settings.topic("labels"), 0, 9)
        state.rows.append(({"x": 1.0}, True))
        await store.write(state)  # MULTI/EXEC over the checkpoint hash, the labelled stream and its row count
        restored = await store.load(settings.model_name)
        assert restored is not None and restored.learner.next_offset(settings.topic("labels"), 0) == 10
        await aclient.aclose()

    asyncio.run(stream_side())
    assert len(read_rows(client, keys.labelled(settings.redis_prefix, settings.model_name))) == 1
    client.close()


def test_a_cluster_client_with_no_node_answering_is_a_connection_error():
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_cluster=True)
    with pytest.raises(redis.ConnectionError, match="no Redis Cluster node answered"):
        redis_client(settings, settings.redis_url, socket_timeout=0.5)
