"""The model registry against the real embedded redis-server."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from driftline.contract import keys
from driftline.contract.signing import IntegrityError, Keyring, sha256_hex
from driftline.models.features import FeatureSchema
from driftline.models.reference import ReferenceProfile
from driftline.models.registry import ModelRegistry
from driftline.models.specs import build_model
from driftline.models.version import UnknownModelError

pytestmark = pytest.mark.integration

KEY = b"registry-test-key"
SCHEMA = FeatureSchema({"x": "numeric", "c": "categorical"})


class TouchOnUnpickle:
    """An object whose unpickling creates a file: proof of whether pickle.loads ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


@pytest.fixture
def registry(redis_client: redis.Redis) -> ModelRegistry:
    return ModelRegistry(redis_client, KEY, prefix="test:")


def trained_model():  # type: ignore[no-untyped-def]
    model = build_model(SCHEMA, "binary")
    for i in range(50):
        model.learn_one({"x": float(i % 2), "c": "ab"[i % 2]}, bool(i % 2))
    return model


def test_register_numbers_versions_per_name_from_one(registry: ModelRegistry) -> None:
    """Versions of one name count 1, 2, 3; another name starts again at 1."""
    got = [registry.register("a", {"i": i}, schema=SCHEMA, task="binary").version for i in range(3)]
    assert got == [1, 2, 3]
    assert registry.register("b", {}, schema=SCHEMA, task="regression").version == 1
    assert registry.names() == ["a", "b"]
    assert [v.version for v in registry.versions("a")] == [1, 2, 3]


def test_load_returns_the_registered_river_model_with_identical_predictions(registry: ModelRegistry) -> None:
    """A River pipeline round-trips: same metadata, same probabilities as before storing."""
    model = trained_model()
    meta = registry.register("m", model, schema=SCHEMA, task="binary", metrics={"acc": 0.9}, note="boot")
    loaded_meta, loaded = registry.load("m")
    assert loaded_meta == meta
    assert loaded_meta.feature_schema() == SCHEMA
    x = {"x": 1.0, "c": "b"}
    assert loaded.predict_proba_one(x) == model.predict_proba_one(x)


def test_load_refuses_a_tampered_blob_without_unpickling_it(registry: ModelRegistry, tmp_path: Path) -> None:
    """A blob replaced in Redis by a malicious pickle raises IntegrityError and its payload never runs."""
    registry.register("m", {"ok": True}, schema=SCHEMA, task="binary")
    marker = tmp_path / "pwned"
    evil = pickle.dumps(TouchOnUnpickle(marker))
    registry.client.set(keys.model("test:", "m", "blob:1"), evil)
    with pytest.raises(IntegrityError, match="SHA-256"):
        registry.load("m")
    assert not marker.exists()
    # Control: the same payload does run when unpickled, so the check above is meaningful.
    pickle.loads(evil)
    assert marker.exists()


def test_load_refuses_a_forged_blob_whose_metadata_digest_was_also_rewritten(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    """Rewriting blob + sha256 + a signature made with another key fails the signature check: never unpickled."""
    meta = registry.register("m", {"ok": True}, schema=SCHEMA, task="binary")
    marker = tmp_path / "pwned"
    evil = pickle.dumps(TouchOnUnpickle(marker))
    forged = ModelRegistry(registry.client, b"guess", prefix="test:").sign(replace(meta, sha256=sha256_hex(evil)))
    registry.client.set(keys.model("test:", "m", "blob:1"), evil)
    registry.client.hset(keys.model("test:", "m", "versions"), "1", forged.to_json())
    with pytest.raises(IntegrityError, match="not in the keyring"):
        registry.load("m", 1)
    assert not marker.exists()


def test_a_signed_blob_copied_under_a_new_version_with_a_cut_schema_is_refused(registry: ModelRegistry) -> None:
    """The attack of issue 14: v1's metadata and blob copied as v2 with the schema cut to one feature and made
    current. Every field is signed, so v2 is refused (load, verify, get) and cannot be promoted."""
    meta = registry.register("m", trained_model(), schema=SCHEMA, task="binary")
    client = registry.client
    client.set(keys.model("test:", "m", "blob:2"), client.get(keys.model("test:", "m", "blob:1")))
    cut = replace(meta, version=2, schema={"x": "numeric"})
    client.hset(keys.model("test:", "m", "versions"), "2", cut.to_json())
    client.set(keys.model("test:", "m", "current"), 2)
    for read in (registry.load, registry.verify, registry.get):
        with pytest.raises(IntegrityError, match="version 2: metadata model-version signature does not match"):
            read("m", None)
    client.hset(keys.model("test:", "m", "versions"), "2", replace(meta, schema={"x": "numeric"}).to_json())
    with pytest.raises(IntegrityError, match="does not match"):
        registry.promote("m", 2)
    client.hset(keys.model("test:", "m", "versions"), "2", meta.to_json())  # v1's metadata untouched, under key 2
    with pytest.raises(IntegrityError, match="holds the signed metadata of 'm' version 1"):
        registry.load("m", 2)


def test_a_swapped_or_deleted_reference_profile_is_refused(registry: ModelRegistry) -> None:
    """The reference profile decides what drift is: its SHA-256 is signed with the version (and inherited, signed,
    by its descendants), so a replaced or deleted profile raises IntegrityError instead of silently changing the
    monitors' baseline."""
    rows = [{"x": float(i), "c": "ab"[i % 2]} for i in range(30)]
    profile = ReferenceProfile.from_rows(rows)
    registry.register("m", 1, schema=SCHEMA, task="binary", reference=profile)
    registry.register("m", 2, schema=SCHEMA, task="binary", parent=1)
    stored = keys.model("test:", "m", f"reference:{sha256_hex(profile.to_json().encode())}")
    shifted = ReferenceProfile.from_rows([{"x": 1000.0 + r["x"], "c": r["c"]} for r in rows])
    registry.client.set(stored, shifted.to_json())
    with pytest.raises(IntegrityError, match="version 1: reference profile does not match"):
        registry.reference("m", 1)
    with pytest.raises(IntegrityError, match="version 2: reference profile does not match"):
        registry.reference("m", 2)
    registry.client.delete(stored)
    with pytest.raises(IntegrityError, match="version 2: reference profile missing"):
        registry.reference("m", 2)
    legacy = keys.model("test:", "m", "reference:1")  # where a version stored its profile before digests
    registry.client.set(legacy, profile.to_json())
    assert registry.reference("m", 1) == profile
    registry.client.set(legacy, shifted.to_json())
    with pytest.raises(IntegrityError, match="version 1: reference profile does not match"):
        registry.reference("m", 1)


def test_reference_costs_two_reads_however_long_the_lineage(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 40th descendant of the version holding the profile reads it with as many Redis commands as the version
    itself: the descendants sign the inherited digest instead of walking up their parents."""
    profile = ReferenceProfile.from_rows([{"x": float(i), "c": "ab"[i % 2]} for i in range(30)])
    registry.register("m", 0, schema=SCHEMA, task="binary", reference=profile)
    for v in range(1, 41):
        registry.register("m", v, schema=SCHEMA, task="binary", parent=v)
    sent: list[str] = []
    send = registry.client.execute_command
    monkeypatch.setattr(registry.client, "execute_command", lambda *a, **k: sent.append(a[0]) or send(*a, **k))
    assert registry.reference("m", 1) == profile
    root = list(sent)
    sent.clear()
    assert registry.reference("m", 41) == profile
    assert sent == root == ["HGET", "MGET"]


def test_prune_keeps_the_newest_pinned_current_challenger_and_in_use_versions(registry: ModelRegistry) -> None:
    """v1 registered by hand and v7 promoted (while current) are pinned; v2..v12 are learner snapshots, v13 a
    challenger; keep 3 with v4 in use: v1, v4, v7, v11, v12, v13 stay, every other blob, metadata and history
    entry goes, and the profile v1 holds (signed by the kept snapshots too) stays readable from the newest one."""
    profile = ReferenceProfile.from_rows([{"x": float(i), "c": "ab"[i % 2]} for i in range(30)])
    registry.register("m", 1, schema=SCHEMA, task="binary", reference=profile)
    for v in range(2, 13):
        registry.register("m", v, schema=SCHEMA, task="binary", parent=v - 1, snapshot=True)
        if v == 7:
            registry.promote("m", 7)
    registry.register("m", 13, schema=SCHEMA, task="binary", parent=12, promote=False)
    registry.set_challenger("m", 13)
    registry.promote("m", 11)
    registry.promote("m", 12)  # current again; 11 is pinned now too
    assert registry.pinned("m") == {1, 7, 11, 12}

    assert registry.prune("m", keep=3, in_use={4}) == [2, 3, 5, 6, 8, 9, 10]
    assert [m.version for m in registry.versions("m")] == [1, 4, 7, 11, 12, 13]
    assert not registry.client.exists(*(keys.model("test:", "m", f"blob:{v}") for v in (2, 3, 5, 6, 8, 9, 10)))
    assert registry.history("m") == [1, 4, 7, 11, 12, 11, 12]
    assert registry.reference("m", 13) == profile
    assert registry.rollback("m").version == 11
    assert registry.prune("m", keep=3) == [4]  # no longer in use
    assert registry.prune("m", keep=3) == []  # the rest is pinned, current (11), challenger or newest


def test_prune_deletes_a_profile_no_kept_version_signs(registry: ModelRegistry) -> None:
    """A profile goes with the last version signing it; one a kept version signs stays."""
    old = ReferenceProfile.from_rows([{"x": float(i), "c": "a"} for i in range(10)])
    new = ReferenceProfile.from_rows([{"x": float(i), "c": "b"} for i in range(10)])
    registry.register("m", 1, schema=SCHEMA, task="binary", reference=old, promote=False)
    registry.register("m", 2, schema=SCHEMA, task="binary", reference=new, snapshot=True)
    assert registry.prune("m", keep=1) == [1]
    assert not registry.client.exists(keys.model("test:", "m", f"reference:{sha256_hex(old.to_json().encode())}"))
    assert registry.reference("m", 2) == new
    with pytest.raises(UnknownModelError):
        registry.prune("ghost", keep=1)
    with pytest.raises(ValueError, match="keep must be at least 1"):
        registry.prune("m", keep=0)


def test_resign_moves_every_version_to_the_current_key_and_refuses_forgeries(redis_client: redis.Redis) -> None:
    """Rotation: versions signed with the old key load under old+new, resign re-signs them, then the new key
    alone loads them; a forged version makes resign fail before it touches anything."""
    old = ModelRegistry(redis_client, KEY, prefix="test:")
    for i in range(3):
        old.register("m", i, schema=SCHEMA, task="binary")
    rotating = ModelRegistry(redis_client, Keyring(b"new-key", old=[KEY]), prefix="test:")
    assert rotating.load("m", 2)[1] == 1
    assert rotating.resign("m") == [1, 2, 3]
    assert rotating.resign("m") == []
    new_only = ModelRegistry(redis_client, b"new-key", prefix="test:")
    assert [new_only.load("m", v)[1] for v in (1, 2, 3)] == [0, 1, 2]
    with pytest.raises(IntegrityError, match="not in the keyring"):
        old.load("m", 1)
    redis_client.set(keys.model("test:", "m", "blob:2"), pickle.dumps("forged"))
    with pytest.raises(IntegrityError, match="SHA-256"):
        rotating.resign("m")


def test_registry_with_a_different_key_refuses_to_load(redis_client: redis.Redis) -> None:
    """A blob signed with one key is refused by a registry configured with another key, which cannot register a
    child of it either (the child would sign the parent's reference digest unverified)."""
    ModelRegistry(redis_client, KEY, prefix="test:").register("m", [1, 2], schema=SCHEMA, task="binary")
    other = ModelRegistry(redis_client, b"another-key", prefix="test:")
    with pytest.raises(IntegrityError, match="not in the keyring"):
        other.load("m")
    with pytest.raises(IntegrityError, match="not in the keyring"):
        other.register("m", [3], schema=SCHEMA, task="binary", parent=1)


def test_load_of_a_version_whose_blob_is_missing_is_an_integrity_error(registry: ModelRegistry) -> None:
    """Metadata without a blob (deleted key) is reported as IntegrityError, not a crash."""
    registry.register("m", 1, schema=SCHEMA, task="binary")
    registry.client.delete(keys.model("test:", "m", "blob:1"))
    with pytest.raises(IntegrityError, match="no blob"):
        registry.load("m")


def test_unknown_names_and_versions_raise_unknown_model_error_saying_which(registry: ModelRegistry) -> None:
    """Unknown name, unknown version and a name without a promoted version each raise UnknownModelError."""
    with pytest.raises(UnknownModelError, match="unknown model 'nope'"):
        registry.get("nope")
    registry.register("m", 1, schema=SCHEMA, task="binary", promote=False)
    with pytest.raises(UnknownModelError, match="no current"):
        registry.load("m")
    with pytest.raises(UnknownModelError, match="no version 7"):
        registry.load("m", 7)
    with pytest.raises(UnknownModelError, match="no version 7"):
        registry.promote("m", 7)
    with pytest.raises(UnknownModelError, match="no parent version 9"):
        registry.register("m", 1, schema=SCHEMA, task="binary", parent=9)
    assert registry.current_version("m") is None


def test_promote_and_rollback_walk_the_promotion_history(registry: ModelRegistry) -> None:
    """register promotes; promote pushes; rollback undoes one promotion at a time, then refuses."""
    for i in range(3):
        registry.register("m", i, schema=SCHEMA, task="binary", promote=(i != 1))
    assert registry.current_version("m") == 3
    assert registry.history("m") == [1, 3]
    assert registry.promote("m", 2).version == 2
    assert registry.promote("m", 2).version == 2  # already current: no duplicate history entry
    assert registry.history("m") == [1, 3, 2]
    assert registry.rollback("m").version == 3
    assert registry.load("m")[1] == 2  # version 3 holds the object 2
    assert registry.rollback("m").version == 1
    assert registry.current_version("m") == 1
    with pytest.raises(ValueError, match="no earlier promoted version"):
        registry.rollback("m")
    assert registry.current_version("m") == 1
    with pytest.raises(UnknownModelError):
        registry.rollback("ghost")


def test_register_without_promote_keeps_the_current_version(registry: ModelRegistry) -> None:
    """A challenger registered with promote=False is stored but scorers keep serving the champion."""
    registry.register("m", "champion", schema=SCHEMA, task="binary")
    challenger = registry.register("m", "challenger", schema=SCHEMA, task="binary", parent=1, promote=False)
    assert registry.current_version("m") == 1
    assert registry.load("m", challenger.version)[1] == "challenger"
    assert registry.get("m", 2).parent == 1


def test_reference_round_trips_and_is_inherited_through_parents(registry: ModelRegistry) -> None:
    """A version stores its reference; descendants without one inherit it; a root without one has None."""
    profile = ReferenceProfile.from_rows([{"x": float(i), "c": "ab"[i % 2]} for i in range(30)])
    registry.register("m", 1, schema=SCHEMA, task="binary", reference=profile)
    registry.register("m", 2, schema=SCHEMA, task="binary", parent=1)
    registry.register("m", 3, schema=SCHEMA, task="binary", parent=2)
    registry.register("m", 4, schema=SCHEMA, task="binary")
    assert registry.reference("m", 1) == profile
    assert registry.reference("m", 3) == profile
    assert registry.reference("m", 4) is None
    assert registry.reference("m") is None  # current is version 4


def test_registry_refuses_a_client_that_decodes_responses(stack) -> None:  # type: ignore[no-untyped-def]
    """Blobs are bytes: a decode_responses=True client is rejected up front."""
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        ModelRegistry(client, KEY)
    client.close()


def test_verify_checks_the_signature_without_unpickling(registry: ModelRegistry, tmp_path: Path) -> None:
    """verify() returns metadata for a good blob and raises IntegrityError for a replaced one, running nothing."""
    registry.register("m", {"ok": True}, schema=SCHEMA, task="binary")
    assert registry.verify("m").version == 1
    marker = tmp_path / "pwned"
    registry.client.set(keys.model("test:", "m", "blob:1"), pickle.dumps(TouchOnUnpickle(marker)))
    with pytest.raises(IntegrityError):
        registry.verify("m", 1)
    assert not marker.exists()


def test_promote_and_rollback_refuse_a_version_whose_blob_was_tampered(registry: ModelRegistry) -> None:
    """Neither promote nor rollback makes a tampered version current; the current version stays as it was."""
    registry.register("m", "v1", schema=SCHEMA, task="binary")
    registry.register("m", "v2", schema=SCHEMA, task="binary")
    registry.register("m", "v3", schema=SCHEMA, task="binary", promote=False)
    registry.client.set(keys.model("test:", "m", "blob:3"), pickle.dumps("forged"))
    with pytest.raises(IntegrityError):
        registry.promote("m", 3)
    registry.client.set(keys.model("test:", "m", "blob:1"), pickle.dumps("forged"))
    with pytest.raises(IntegrityError):
        registry.rollback("m")
    assert registry.current_version("m") == 2 and registry.history("m") == [1, 2]


def test_concurrent_registrations_get_distinct_consecutive_versions(redis_client: redis.Redis, stack) -> None:  # type: ignore[no-untyped-def]
    """Four writers registering five versions each end with versions 1..20, each stored once."""
    from concurrent.futures import ThreadPoolExecutor

    def writer(w: int) -> list[int]:
        client = redis.Redis.from_url(stack.redis_url)
        reg = ModelRegistry(client, KEY, prefix="test:")
        got = [reg.register("m", (w, i), schema=SCHEMA, task="binary").version for i in range(5)]
        client.close()
        return got

    with ThreadPoolExecutor(4) as pool:
        got = [v for versions in pool.map(writer, range(4)) for v in versions]
    registry = ModelRegistry(redis_client, KEY, prefix="test:")
    assert sorted(got) == list(range(1, 21))
    assert [v.version for v in registry.versions("m")] == list(range(1, 21))
    assert {registry.load("m", v)[1] for v in range(1, 21)} == {(w, i) for w in range(4) for i in range(5)}
    assert len(registry.history("m")) == 20


def test_replace_challenger_moves_only_the_challenger_it_expects(registry: ModelRegistry) -> None:
    """The learner's snapshot replaces its own challenger, never one set or cleared meanwhile."""
    for _ in range(3):
        registry.register("m", trained_model(), schema=SCHEMA, task="binary", promote=False)
    registry.set_challenger("m", 1)
    assert registry.replace_challenger("m", expected=1, version=2) is True
    assert registry.challenger_version("m") == 2
    assert registry.replace_challenger("m", expected=1, version=3) is False, "v2 is the challenger now"
    assert registry.challenger_version("m") == 2
    registry.set_challenger("m", None)
    assert registry.replace_challenger("m", expected=2, version=3) is False
    assert registry.challenger_version("m") is None, "a cleared challenger stays cleared"
