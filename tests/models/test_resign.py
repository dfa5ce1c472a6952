"""Key rotation as docs/RUNBOOK.md says, end to end on the real stack (issue 14): a worker scoring and learning,
the key rotated with the old one kept for verification, ``driftline models resign``, the old key removed."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import redis
from click.testing import CliRunner

from driftline.cli import main
from driftline.contract import keys
from driftline.contract.settings import Settings
from driftline.contract.signing import IntegrityError, Keyring, unseal
from driftline.models.bootstrap import bootstrap_model, synthetic_stream
from driftline.models.registry import ModelRegistry
from tests.harness import WorkerProcess, publish, read_until, settings_env

pytestmark = pytest.mark.integration

PHASE = 600  # events (and labels) per phase: before, during and after the rotation
OLD_KEY, NEW_KEY = "old-key-7f3a", "new-key-91c2"


def learned(client: redis.Redis, settings: Settings) -> int:
    return int(client.hget(keys.learner(settings.redis_prefix, settings.model_name), "learned") or 0)


def run_phase(settings: Settings, client: redis.Redis, tmp_path, phase: int, pairs: list) -> str:  # type: ignore[no-untyped-def]
    """Start a worker with ``settings``, publish one phase's events and labels, wait until every label is
    learned, stop the worker (SIGTERM); its log."""
    worker = WorkerProcess(settings, tmp_path / f"phase{phase}").start()
    try:
        chunk = pairs[phase * PHASE : (phase + 1) * PHASE]
        asyncio.run(publish(settings, "events", ((e["event_id"].encode(), json.dumps(e).encode()) for e, _ in chunk)))
        labels = ({"event_id": e["event_id"], "label": y, "ts": e["ts"] + 1} for e, y in chunk)
        asyncio.run(publish(settings, "labels", ((None, json.dumps(x).encode()) for x in labels)))
        deadline = time.monotonic() + 180
        while learned(client, settings) < (phase + 1) * PHASE:
            assert worker.alive(), worker.log()[-3000:]
            assert time.monotonic() < deadline, f"{learned(client, settings)} learned\n{worker.log()[-3000:]}"
            time.sleep(0.2)
    finally:
        worker.stop()
    return worker.log()


def test_rotation_with_resign_refuses_nothing_and_loses_nothing(settings: Settings, redis_client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = Settings(
        **{
            **settings_as_kwargs(settings),
            "model_hmac_key": OLD_KEY,
            "snapshot_every_labels": 250,
            "snapshot_min_interval_ms": 0,
        }
    )
    for phase in range(3):
        (tmp_path / f"phase{phase}").mkdir()
    model, schema, task = bootstrap_model(samples=500)
    ModelRegistry(redis_client, OLD_KEY.encode(), base.redis_prefix).register(
        base.model_name, model, schema=schema, task=task
    )
    pairs = list(synthetic_stream(3 * PHASE))
    logs = [run_phase(base, redis_client, tmp_path, 0, pairs)]

    rotating = Settings(**{**settings_as_kwargs(base), "model_hmac_key": NEW_KEY, "model_hmac_old_keys": OLD_KEY})
    logs.append(run_phase(rotating, redis_client, tmp_path, 1, pairs))
    result = CliRunner().invoke(main, ["models", "resign"], env=settings_env(rotating))
    assert result.exit_code == 0, result.output
    versions = ModelRegistry(redis_client, Keyring(NEW_KEY.encode()), base.redis_prefix).versions(base.model_name)
    assert f"{base.model_name}: " in result.output and "checkpoints re-signed" in result.output

    rotated = Settings(**{**settings_as_kwargs(base), "model_hmac_key": NEW_KEY})
    logs.append(run_phase(rotated, redis_client, tmp_path, 2, pairs))

    out = asyncio.run(read_until(base, ["predictions", "alerts"], lambda seen: len(seen["predictions"]) >= 3 * PHASE))
    predicted = {json.loads(r.value)["event_id"] for r in out["predictions"]}
    assert predicted == {e["event_id"] for e, _ in pairs}, "0 events lost"
    assert learned(redis_client, base) == 3 * PHASE, "0 labels lost, none learned twice"
    integrity = [a for a in map(lambda r: json.loads(r.value), out["alerts"]) if a["kind"] == "model_integrity"]
    assert integrity == [], "0 integrity alerts"
    assert not any("not restored" in log or "refused" in log for log in logs), logs[-1][-3000:]

    new_only = ModelRegistry(redis_client, NEW_KEY.encode(), base.redis_prefix)
    assert len(versions) >= 3 and all(new_only.verify(base.model_name, v.version) for v in versions)
    stored = redis_client.hget(keys.learner(base.redis_prefix, base.model_name), "checkpoint")
    unseal(Keyring(NEW_KEY.encode()), stored, keys.learner_purpose(base.model_name))
    with pytest.raises(IntegrityError, match="not in the keyring"):
        unseal(Keyring(OLD_KEY.encode()), stored, keys.learner_purpose(base.model_name))
    scoring = redis_client.get(keys.monitor(base.redis_prefix, base.model_name, "scoring"))
    unseal(Keyring(NEW_KEY.encode()), scoring, keys.monitor_purpose(base.model_name, "scoring"))


def settings_as_kwargs(settings: Settings) -> dict:
    return {
        k: (v.get_secret_value() if hasattr(v, "get_secret_value") else v)
        for k, v in settings.model_dump(exclude_none=True).items()
    }
