"""Clients built from settings: Kafka (aiokafka) keyword arguments and Redis, with credentials and TLS."""

from __future__ import annotations

import ssl
from typing import Any

import redis
import redis.asyncio as aioredis

from driftline.settings import Settings


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


def _redis_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5, "health_check_interval": 10}
    if settings.redis_username:
        kwargs["username"] = settings.redis_username
    if settings.redis_password is not None:
        kwargs["password"] = settings.redis_password.get_secret_value()
    if settings.redis_ssl:
        kwargs["ssl"] = True
        kwargs["ssl_ca_certs"] = settings.redis_ssl_cafile
    return kwargs


def redis_client(settings: Settings, url: str) -> redis.Redis:
    """A synchronous Redis client for ``url`` with the configured credentials and TLS."""
    return redis.Redis.from_url(url, **_redis_kwargs(settings))


def async_redis_client(settings: Settings, url: str) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` with the configured credentials and TLS."""
    return aioredis.Redis.from_url(url, **_redis_kwargs(settings))
