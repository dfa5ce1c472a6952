"""Shared fixtures: the real embedded broker and redis-server, started once per session and stopped by pid."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import redis

from driftline.contract.settings import Settings
from driftline.embedded.stack import EmbeddedRedisCluster, EmbeddedStack, embedded_stack, start_redis_cluster

#: Property tests keep the example counts each test sets but never fail because a shared machine is slow: no
#: per-example deadline, no too-slow health check, and no example database carried between runs.
hypothesis.settings.register_profile(
    "ci", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow], database=None
)
hypothesis.settings.load_profile("ci")

TEST_HMAC_KEY = "test-hmac-key"
#: Commands tests use to look at Redis that driftline itself never sends (its ACL allows only its own).
TEST_ONLY_REDIS_COMMANDS = ("flushdb", "exists", "pttl")


@pytest.fixture(scope="session", autouse=True)
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Workers and commands the tests start keep their local state (Faust's data directory) in the session's
    temporary folder, not in the user's state folder."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("state")
        patch.setenv("DRIFTLINE_STATE_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def stack() -> Iterator[EmbeddedStack]:
    """Tansu + redis-server on free loopback ports for the whole session (Redis: every key, since each test has
    its own prefix, and :data:`TEST_ONLY_REDIS_COMMANDS`; otherwise the same ACL as ``driftline up``)."""
    with embedded_stack(key_prefix="", extra_redis_commands=TEST_ONLY_REDIS_COMMANDS) as started:
        yield started
    for server in (started.broker, started.redis):
        assert server.proc.poll() is not None, f"{server.name} (pid {server.pid}) still running"


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedisCluster]:
    """A Redis Cluster of 3 masters (redis-server processes of the same binary) on loopback ports, started once
    per session by the tests that ask for it and stopped by pid; same ACL as :func:`stack`'s Redis."""
    cluster = start_redis_cluster(
        tmp_path_factory.mktemp("redis-cluster"),
        secrets.token_urlsafe(24),
        key_prefix="",
        extra_commands=TEST_ONLY_REDIS_COMMANDS,
    )
    yield cluster
    cluster.stop()
    for node in cluster.nodes:
        assert node.proc.poll() is not None, f"redis cluster node (pid {node.pid}) still running"


@pytest.fixture
def redis_client(stack: EmbeddedStack) -> Iterator[redis.Redis]:
    """A client of the embedded Redis, flushed before each test."""
    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def settings(stack: EmbeddedStack) -> Settings:
    """Settings pointing at the embedded stack, with topics unique to this test."""
    return Settings(
        broker_url=stack.broker_url,
        redis_url=stack.redis_url,
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
        model_hmac_key=TEST_HMAC_KEY,
        metrics_port=0,
        http_port=0,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        rebalance_timeout_ms=6000,
    )
