"""Clients built from settings: Kafka (aiokafka) keyword arguments and Redis, with credentials and TLS."""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import time
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
import redis.cluster
import redis.exceptions
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, KafkaTimeoutError
from redis.backoff import NoBackoff
from redis.retry import Retry

from driftline.contract.settings import Settings
from driftline.contract.urls import masked


def kafka_kwargs(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """Keyword arguments every aiokafka client of this process gets (bootstrap, security).

    >>> kafka_kwargs(Settings(), "127.0.0.1:9092")
    {'bootstrap_servers': '127.0.0.1:9092', 'security_protocol': 'PLAINTEXT'}
    """
    kwargs: dict[str, Any] = {"bootstrap_servers": bootstrap, "security_protocol": settings.kafka_security_protocol}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile:
            context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
        kwargs["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            kwargs["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return kwargs


def confluent_config(settings: Settings, bootstrap: str) -> dict[str, Any]:
    """librdkafka's properties for the connection :func:`kafka_kwargs` describes (confluent-kafka clients).

    >>> confluent_config(Settings(), "127.0.0.1:9092")
    {'bootstrap.servers': '127.0.0.1:9092', 'security.protocol': 'plaintext'}
    >>> sorted(confluent_config(Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u"), "b:1"))
    ['bootstrap.servers', 'sasl.mechanism', 'sasl.username', 'security.protocol', 'ssl.ca.location']
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "security.protocol": settings.kafka_security_protocol.lower(),
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        config["ssl.ca.location"] = settings.kafka_ssl_cafile or "probe"  # probe: the system's CA bundle
        if settings.kafka_ssl_certfile:
            config["ssl.certificate.location"] = settings.kafka_ssl_certfile
            if settings.kafka_ssl_keyfile:
                config["ssl.key.location"] = settings.kafka_ssl_keyfile
    if settings.kafka_security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        config["sasl.username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    return config


async def fetch_log_ends(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], timeout: float
) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition, read by ``consumer`` (no group: it is assigned
    ``partitions`` and moved, so its positions are lost).

    The larger of ``ListOffsets(latest)`` and the high watermark a fetch reports: the embedded broker (Tansu)
    answers ``ListOffsets(latest)`` (aiokafka's ``end_offsets``, and so ``seek_to_end``) with the base offset of
    the partition's last record batch plus one, short of the end when that batch holds several records, while its
    fetch responses carry the true high watermark (Apache Kafka gives the same value both ways). No high watermark
    within ``timeout`` seconds raises :class:`KafkaTimeoutError` (the listed offset alone cannot be trusted).
    """
    if not partitions:
        return {}
    listed = await consumer.end_offsets(partitions)
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, listed[tp])
    deadline = time.monotonic() + timeout
    while any(consumer.highwater(tp) is None for tp in partitions) and time.monotonic() < deadline:
        await consumer.getmany(*partitions, timeout_ms=200, max_records=1)
    missing = sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions if consumer.highwater(tp) is None)
    if missing:
        raise KafkaTimeoutError(f"no high watermark for {', '.join(missing)} within {timeout:g} s")
    return {tp: max(listed[tp], consumer.highwater(tp)) for tp in partitions}


async def log_end_offsets(
    kafka: dict[str, Any], partitions: list[TopicPartition], timeout: float
) -> dict[TopicPartition, int]:
    """:func:`fetch_log_ends` with a consumer of its own (``kafka``: :func:`kafka_kwargs`), stopped on return; a
    broker that does not answer in time raises :class:`KafkaTimeoutError`."""
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(
        **kafka, group_id=None, enable_auto_commit=False, request_timeout_ms=max(int(timeout * 1000), 1000)
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout)
        return await asyncio.wait_for(fetch_log_ends(consumer, partitions, timeout), timeout * 2)
    except TimeoutError as exc:
        raise KafkaTimeoutError(f"log end offsets not read within {timeout:g} s") from exc
    finally:
        await consumer.stop()


class BrokerUnreachable(ConnectionError):
    """No Kafka broker answered at the configured bootstrap servers in time (the message says where)."""


#: Seconds a starting worker or a command waits for the broker to answer as Kafka before it gives up.
BROKER_CHECK_SECONDS = 10.0


async def check_broker(settings: Settings, bootstrap: str, timeout: float = BROKER_CHECK_SECONDS) -> None:
    """Return once a Kafka broker at ``bootstrap`` answered a metadata request; raise :class:`BrokerUnreachable`
    after ``timeout`` seconds otherwise (nothing listening, or a port that does not speak Kafka, which aiokafka
    would wait on for minutes)."""
    admin = AIOKafkaAdminClient(**kafka_kwargs(settings, bootstrap), request_timeout_ms=int(timeout * 1000))
    quiet = logging.getLogger("aiokafka")
    level, quiet.level = quiet.level, logging.CRITICAL  # the failure is raised below, once, not logged on the way
    try:
        await asyncio.wait_for(admin.start(), timeout)
    except (KafkaError, OSError, TimeoutError) as exc:
        reason = str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, TimeoutError):
            reason = "no Kafka answer: is it a Kafka listener's port?"
        raise BrokerUnreachable(f"no Kafka broker answered at {bootstrap} within {timeout:g} s ({reason})") from None
    finally:
        await admin.close()
        quiet.setLevel(level)


def redis_tls_url(settings: Settings, url: str) -> str:
    """``url`` with the TLS scheme ``rediss://`` when ``DRIFTLINE_REDIS_SSL`` is set (redis-py picks its TLS
    connection class from the scheme; it has no ``ssl=True`` switch for ``from_url``).

    >>> redis_tls_url(Settings(redis_ssl=True), "redis://redis:6379/0")
    'rediss://redis:6379/0'
    >>> redis_tls_url(Settings(), "redis://redis:6379/0")
    'redis://redis:6379/0'
    """
    if settings.redis_ssl and url.startswith("redis://"):
        return "rediss://" + url.removeprefix("redis://")
    return url


def _redis_kwargs(settings: Settings, url: str, socket_timeout: float = 5.0) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "health_check_interval": 10,
    }
    if settings.redis_username:
        kwargs["username"] = settings.redis_username
    if settings.redis_password is not None:
        kwargs["password"] = settings.redis_password.get_secret_value()
    if url.startswith("rediss://") and settings.redis_ssl_cafile:
        kwargs["ssl_ca_certs"] = settings.redis_ssl_cafile
    return kwargs


def redis_client(settings: Settings, url: str, socket_timeout: float = 5.0, retry: bool = True) -> redis.Redis:
    """A synchronous Redis client for ``url`` with the configured credentials and TLS; a Redis Cluster client
    (:class:`redis.cluster.RedisCluster`, same commands) when ``DRIFTLINE_REDIS_CLUSTER`` is set.

    ``socket_timeout`` (seconds) also bounds connecting. redis-py retries a timed-out call with backoff (a hung
    server costs over ten timeouts per call); calls made on the event loop want a short timeout and
    ``retry=False``. The cluster client connects when it is made (to learn the slots), and raises
    :class:`redis.ConnectionError` when no node answers.

    >>> client = redis_client(Settings(redis_ssl=True, redis_ssl_cafile="/ca.pem"), "redis://redis:6379/0")
    >>> client.connection_pool.connection_class.__name__, client.connection_pool.connection_kwargs["ssl_ca_certs"]
    ('SSLConnection', '/ca.pem')
    >>> redis_client(Settings(), "redis://redis:6379/0", socket_timeout=0.5, retry=False).get_retry().get_retries()
    0
    """
    url = redis_tls_url(settings, url)
    kwargs = _redis_kwargs(settings, url, socket_timeout)
    if not retry:
        kwargs["retry"] = Retry(NoBackoff(), 0)
    if settings.redis_cluster:
        try:
            return redis.cluster.RedisCluster.from_url(url, **kwargs)  # type: ignore[return-value]
        except redis.exceptions.RedisClusterException as exc:
            raise redis.ConnectionError(f"no Redis Cluster node answered at {masked(url)}: {exc}") from None
    return redis.Redis.from_url(url, **kwargs)


#: Argument types hiredis packs as redis-py's encoder does (a float is written differently: redis-py packs those).
_PACKED_AS_IS = frozenset((bytes, str, int))


class _HiredisPacking:
    """Commands packed by hiredis (C): redis-py's asyncio connection packs them in Python (~9.5 against ~1.1 us a
    single-field ``HMGET``), and the learner sends one command per label it joins and deletes, the scorer one per
    join record it writes. A command with any other argument type (a float, a memoryview) is packed by redis-py.

    >>> from redis.asyncio.connection import Connection
    >>> fast, slow = type("C", (_HiredisPacking, Connection), {})(), Connection()
    >>> commands = [("HMGET", "k", "e1", b"e2"), ("EXPIRE", "k", 60), ("SET", "x", 0.1), ("CONFIG GET", "maxmemory")]
    >>> all(fast.pack_commands([c]) == slow.pack_commands([c]) for c in commands)
    True
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        name = args[0]
        if isinstance(name, str):
            args = (*name.encode().split(), *args[1:])
        elif b" " in name:
            args = (*name.split(), *args[1:])
        if all(type(arg) in _PACKED_AS_IS for arg in args):
            return [hiredis.pack_command(args)]
        return super().pack_command(*args)  # type: ignore[misc]


def async_redis_client(settings: Settings, url: str) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` with the configured credentials and TLS (a Redis Cluster client when
    ``DRIFTLINE_REDIS_CLUSTER`` is set; it connects on its first command).

    Replies are parsed by hiredis (C), not redis-py's Python parser: the learner reads one reply per label it joins;
    the single-server client's commands are packed by hiredis too (:class:`_HiredisPacking`; the cluster client
    makes its nodes' connections itself and packs them in Python).

    >>> connection = async_redis_client(Settings(), "redis://redis:6379/0").connection_pool.make_connection()
    >>> type(connection._parser).__name__, isinstance(connection, _HiredisPacking)
    ('_AsyncHiredisParser', True)
    """
    url = redis_tls_url(settings, url)
    if settings.redis_cluster:
        return aioredis.RedisCluster.from_url(url, **_redis_kwargs(settings, url))  # type: ignore[return-value]
    client = aioredis.Redis.from_url(url, **_redis_kwargs(settings, url))
    pool = client.connection_pool
    plain = pool.connection_class
    pool.connection_class = type(f"Hiredis{plain.__name__}", (_HiredisPacking, plain), {})
    return client


async def write_many(client: aioredis.Redis, commands: Sequence[Sequence[Any]]) -> None:
    """Send ``commands`` in one round trip and read every reply; raises the first error reply after all are read.

    A pipeline of redis-py's asyncio client reads each reply under its own ``socket_timeout`` (an asyncio timeout
    armed and cancelled per reply) and through the command's response callback: ~20 us a reply, when the scorer's
    join writes send two commands per bucket touched (one ``HSET`` of its records, one ``EXPIRE``). Here the
    commands are packed by hiredis at once and the replies read with no timeout of their own, the whole exchange
    under one ``socket_timeout``; the client's retry policy applies as in a pipeline (a dropped connection is
    reconnected and the commands sent again). Only for commands whose replies the caller does not read
    (``int``, ``str`` and ``bytes`` arguments); a Redis Cluster client sends them as its pipeline does.
    """
    if not commands:
        return
    if not isinstance(client, aioredis.Redis):  # a cluster client: its pipeline routes each command to its node
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        await pipe.execute()
        return
    await read_many(client, commands)


async def read_many(client: aioredis.Redis, commands: Sequence[Sequence[Any]]) -> list[Any]:
    """:func:`write_many`, returning the replies as the parser reads them (no response callbacks: for commands
    whose reply needs none, e.g. ``HMGET``'s list of values or None); the learner's join lookups, one ``HMGET``
    per bucket a batch's labels fall in."""
    if not commands:
        return []
    if not isinstance(client, aioredis.Redis):  # a cluster client: its pipeline routes each command to its node
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return await pipe.execute()
    packed = b"".join(hiredis.pack_command(tuple(command)) for command in commands)
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        return await connection.retry.call_with_retry(
            lambda: _exchange(connection, packed, len(commands)), lambda _: connection.disconnect()
        )
    finally:
        await pool.release(connection)


async def _exchange(connection: Any, packed: bytes, replies: int) -> list[Any]:
    """Send ``packed`` and read its ``replies`` under one ``socket_timeout``; a connection left with replies unread
    (a timeout, a cancellation) is closed, never reused."""
    errors: list[redis.ResponseError] = []
    read: list[Any] = []
    try:
        async with asyncio.timeout(connection.socket_timeout):
            await connection.send_packed_command(packed)
            for _ in range(replies):
                try:
                    read.append(await connection.read_response(timeout=math.inf))  # inf: no timeout of its own
                except redis.ResponseError as exc:
                    errors.append(exc)
    except TimeoutError:
        await connection.disconnect(nowait=True)
        raise redis.TimeoutError(f"Timeout reading from {connection.host}:{connection.port}") from None
    except BaseException:
        await connection.disconnect(nowait=True)
        raise
    if errors:
        raise errors[0]
    return read


def get_many(client: redis.Redis, keys: list[str]) -> list[bytes | None]:
    """``GET`` of each key in one round trip per node: an ``MGET`` would be refused on a Redis Cluster when the
    keys are in different slots (e.g. one key of each model)."""
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
        return pipe.execute()
