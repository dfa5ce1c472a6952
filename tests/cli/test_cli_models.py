"""`driftline models` against the real embedded redis-server, through click's CliRunner."""

from __future__ import annotations

import json
import pickle

import pytest
import redis
from click.testing import CliRunner, Result

from driftline.cli import main
from driftline.contract import keys
from driftline.contract.signing import Keyring
from driftline.models.champion import PairedComparison, load_comparison, save_comparison
from driftline.models.features import FeatureSchema
from driftline.models.reference import ReferenceProfile
from driftline.models.registry import ModelRegistry
from tests.conftest import TEST_HMAC_KEY

pytestmark = pytest.mark.integration

SCHEMA = FeatureSchema({"x": "numeric", "c": "categorical"})
PREFIX = "driftline:"


@pytest.fixture
def env(stack, redis_client: redis.Redis) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"DRIFTLINE_REDIS_URL": stack.redis_url, "DRIFTLINE_MODEL_HMAC_KEY": TEST_HMAC_KEY}


@pytest.fixture
def registry(redis_client: redis.Redis) -> ModelRegistry:
    reg = ModelRegistry(redis_client, TEST_HMAC_KEY.encode(), prefix=PREFIX)
    profile = ReferenceProfile.from_rows([{"x": float(i), "c": "ab"[i % 2]} for i in range(20)])
    reg.register(
        "fraud",
        {"v": 1},
        schema=SCHEMA,
        task="binary",
        metrics={"auc": 0.91},
        reference=profile,
        note="bootstrap",
        data_summary={"rows": 20},
    )
    reg.register("fraud", {"v": 2}, schema=SCHEMA, task="binary", parent=1)
    reg.register("price", {"v": 1}, schema=SCHEMA, task="regression")
    return reg


def invoke(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["models", *args], env=env)


def test_list_shows_every_model_with_current_and_latest_versions(env: dict[str, str], registry: ModelRegistry) -> None:
    """Human and --json output list both models; fraud is at version 2 of 2."""
    result = invoke(env, "list")
    assert result.exit_code == 0, result.output
    assert "fraud" in result.output and "price" in result.output
    rows = json.loads(invoke(env, "list", "--json").output)
    assert [(r["name"], r["current"], r["versions"], r["task"]) for r in rows] == [
        ("fraud", 2, 2, "binary"),
        ("price", 1, 1, "regression"),
    ]


def test_list_with_an_empty_registry_says_so(env: dict[str, str]) -> None:
    """No models: a clear sentence, exit 0; --json gives []."""
    assert "no models registered yet" in invoke(env, "list").output
    assert json.loads(invoke(env, "list", "--json").output) == []


def test_show_prints_verified_metadata_of_current_or_given_version(
    env: dict[str, str], registry: ModelRegistry
) -> None:
    """show NAME gives the current version; NAME@1 the first, with its metrics, reference and note."""
    current = json.loads(invoke(env, "show", "fraud", "--json").output)
    assert (current["version"], current["current"], current["parent"]) == (2, True, 1)
    assert current["has_reference"] is True and current["integrity"] == "verified"  # inherited from version 1
    text = invoke(env, "show", "fraud@1")
    assert text.exit_code == 0
    assert "fraud@1" in text.output and "auc=0.91" in text.output and "bootstrap" in text.output
    assert "(current)" not in text.output


def test_promote_and_rollback_switch_the_served_version(env: dict[str, str], registry: ModelRegistry) -> None:
    """promote fraud@1 serves version 1; rollback returns to 2; a second rollback reaches the start and fails."""
    result = invoke(env, "promote", "fraud@1")
    assert result.exit_code == 0 and "promoted fraud@1 (was 2)" in result.output
    assert registry.current_version("fraud") == 1
    result = invoke(env, "rollback", "fraud")
    assert result.exit_code == 0 and "rolled back fraud: 1 -> 2" in result.output
    assert registry.current_version("fraud") == 2
    invoke(env, "rollback", "fraud")
    result = invoke(env, "rollback", "fraud")
    assert result.exit_code != 0 and "no earlier promoted version" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "ghost"), "unknown model 'ghost'"),
        (("show", "fraud@9"), "model 'fraud' has no version 9"),
        (("show", "fraud@x"), "bad model reference 'fraud@x'"),
        (("promote", "fraud"), "promote needs NAME@VERSION"),
        (("promote", "fraud@0"), "bad model reference"),
        (("rollback", "fraud@1"), "without @VERSION"),
        (("rollback", "ghost"), "unknown model 'ghost'"),
    ],
)
def test_bad_input_is_a_one_line_error_with_non_zero_exit(
    env: dict[str, str], registry: ModelRegistry, args: tuple[str, ...], message: str
) -> None:
    """Unknown models and malformed references: 'Error: <reason>' on one line, exit 1, no traceback."""
    result = invoke(env, *args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0


def test_tampered_blob_is_refused_by_show_and_promote(env: dict[str, str], registry: ModelRegistry) -> None:
    """A replaced blob fails verification: show and promote exit non-zero naming the integrity failure."""
    registry.client.set(keys.model(PREFIX, "fraud", "blob:1"), pickle.dumps({"v": "forged"}))
    for args in (("show", "fraud@1"), ("promote", "fraud@1")):
        result = invoke(env, *args)
        assert result.exit_code == 1 and "does not match" in result.output
    assert registry.current_version("fraud") == 2


def test_wrong_hmac_key_in_settings_is_refused(env: dict[str, str], registry: ModelRegistry) -> None:
    """With another DRIFTLINE_MODEL_HMAC_KEY every signature check fails: non-zero exit, the key named by id."""
    result = invoke({**env, "DRIFTLINE_MODEL_HMAC_KEY": "not-the-key"}, "show", "fraud")
    assert result.exit_code == 1 and "signed with a key not in the keyring (key id" in result.output


def test_redis_url_without_hmac_key_is_an_invalid_settings_error(stack) -> None:  # type: ignore[no-untyped-def]
    """A Redis URL without a signing key: the registry commands refuse in one line (exit 2)."""
    result = CliRunner().invoke(
        main, ["models", "list"], env={"DRIFTLINE_REDIS_URL": stack.redis_url, "DRIFTLINE_MODEL_HMAC_KEY": None}
    )
    assert result.exit_code == 2 and "DRIFTLINE_MODEL_HMAC_KEY is not set: start `driftline up`" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unreachable_redis_is_a_one_line_error(env: dict[str, str]) -> None:
    """A URL nothing listens on gives 'Redis error: ConnectionError ...' and a non-zero exit."""
    result = invoke({**env, "DRIFTLINE_REDIS_URL": "redis://127.0.0.1:1/0"}, "list")
    assert result.exit_code == 2 and "Redis error: ConnectionError" in result.output


def test_compare_without_stored_data_says_no_challenger_data_yet(env: dict[str, str], registry: ModelRegistry) -> None:
    """No comparison stored for the model: clear message and non-zero exit."""
    result = invoke(env, "compare", "fraud")
    assert result.exit_code == 1 and "no challenger data yet for model 'fraud'" in result.output


def test_compare_prints_the_stored_comparison(env: dict[str, str], registry: ModelRegistry) -> None:
    """A comparison saved by the learner round-trips through Redis and is printed as text and JSON."""
    comparison = PairedComparison(window=100)
    for i in range(60):
        comparison.update(float(i % 2), float(i % 6 == 0))
    stored = save_comparison(
        registry.client, PREFIX, "fraud", comparison.result(), champion_version=2, challenger_version=3
    )
    assert load_comparison(registry.client, PREFIX, "fraud") == stored
    assert load_comparison(registry.client, PREFIX, "price") is None
    text = invoke(env, "compare", "fraud")
    assert text.exit_code == 0
    assert "champion v2 vs challenger v3 on 60 paired labels" in text.output
    assert "winner      challenger" in text.output
    assert json.loads(invoke(env, "compare", "fraud", "--json").output) == stored


def test_resign_moves_every_model_to_the_new_key_and_stops_at_a_forgery(
    env: dict[str, str], registry: ModelRegistry
) -> None:
    """`models resign` with the new key current and the old one listed: every version re-signed (one line per
    model, the new key's id); then the new key alone verifies them. A forged blob: one-line error, exit 1."""
    rotating = {**env, "DRIFTLINE_MODEL_HMAC_KEY": "new-key", "DRIFTLINE_MODEL_HMAC_OLD_KEYS": TEST_HMAC_KEY}
    result = invoke(rotating, "resign")
    assert result.exit_code == 0, result.output
    key_id = Keyring(b"new-key").current_id
    assert result.output.splitlines() == [
        f"fraud: 2 versions and 0 checkpoints re-signed with key {key_id}",
        f"price: 1 versions and 0 checkpoints re-signed with key {key_id}",
    ]
    assert invoke({**env, "DRIFTLINE_MODEL_HMAC_KEY": "new-key"}, "show", "fraud@1").exit_code == 0
    registry.client.set(keys.model(PREFIX, "price", "blob:1"), pickle.dumps("forged"))
    forged = invoke(rotating, "resign", "price")
    assert forged.exit_code == 1 and len(forged.output.strip().splitlines()) == 1
    assert "blob SHA-256 does not match its signed metadata" in forged.output


def test_prune_trims_every_model_to_keep_and_keeps_what_a_learner_stands_on(
    env: dict[str, str], registry: ModelRegistry
) -> None:
    """fraud gets 8 learner snapshots (v3..v10) and a learner checkpoint on v4: prune --keep 2 keeps v1 and v2
    (registered by hand), v4 (the checkpoint's base) and the newest two; price has nothing to prune; an unknown
    name fails."""
    for v in range(3, 11):
        registry.register("fraud", {"v": v}, schema=SCHEMA, task="binary", parent=v - 1, snapshot=True)
    registry.client.hset(keys.learner(PREFIX, "fraud"), "base_version", 4)
    result = invoke(env, "prune", "--keep", "2")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["fraud: 5 versions pruned, 5 kept", "price: 0 versions pruned, 1 kept"]
    assert [m.version for m in registry.versions("fraud")] == [1, 2, 4, 9, 10]
    assert json.loads(invoke(env, "show", "fraud", "--json").output)["has_reference"] is True
    missing = invoke(env, "prune", "ghost")
    assert missing.exit_code != 0 and "unknown model 'ghost'" in missing.output
