"""`driftline offline register DIR` against the real embedded redis-server: the River model and its reference
profile become a new, current, signed registry version the scorers load."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer

from driftline.cli import main
from driftline.models.reference import ReferenceProfile
from driftline.models.registry import ModelRegistry
from driftline.offline.export import sha256_file, verify_manifest
from driftline.offline.framing import SplitPlan, TrainingPlan, card_to_toml, draft_card
from tests.conftest import TEST_HMAC_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`driftline offline train` with the key set: its manifest comes out signed."""
    df = load_breast_cancer(as_frame=True).frame
    card = dataclasses.replace(
        draft_card(df, "target"), split=SplitPlan(folds=3), training=TrainingPlan(candidates=("linear",), bootstrap=100)
    )
    work = tmp_path_factory.mktemp("register")
    df.to_csv(work / "data.csv", index=False)
    (work / "card.toml").write_text(card_to_toml(card))
    args = ["offline", "train", "--data", str(work / "data.csv"), "--framing", str(work / "card.toml")]
    result = CliRunner().invoke(
        main, [*args, "--out", str(work / "run")], env={"DRIFTLINE_MODEL_HMAC_KEY": TEST_HMAC_KEY}
    )
    assert result.exit_code == 0, result.output
    assert "signature" in json.loads((work / "run" / "manifest.json").read_text())
    return work / "run"


class TouchOnUnpickle:
    """An object whose unpickling creates a file: proof of whether a pickle ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.path,))


def copy_of(trained: Path, where: Path) -> Path:
    where.mkdir()
    for path in trained.iterdir():
        (where / path.name).write_bytes(path.read_bytes())
    return where


def register(stack, *args: str):
    env = {
        "DRIFTLINE_REDIS_URL": stack.redis_url,
        "DRIFTLINE_MODEL_HMAC_KEY": TEST_HMAC_KEY,
        "DRIFTLINE_BROKER_URL": None,
        "DRIFTLINE_TOPIC_PREFIX": None,
    }
    return CliRunner().invoke(main, ["offline", "register", *args], env=env)


def test_register_stores_the_river_model_and_reference_as_the_current_version(stack, redis_client, trained) -> None:
    """Two registrations make versions 1 and 2; the current one loads (HMAC-verified) and predicts like the
    exported river_model.pkl; its reference profile is reference_profile.json; metrics hold the test F1."""
    first = register(stack, str(trained), "--model", "cancer")
    assert first.exit_code == 0, first.output
    assert "registered cancer version 1 (current)" in first.stdout
    second = register(stack, str(trained), "--model", "cancer", "--note", "again")
    assert "version 2" in second.stdout

    registry = ModelRegistry(redis_client, TEST_HMAC_KEY.encode(), prefix="driftline:")
    meta, model = registry.load("cancer")
    assert meta.version == 2 and registry.current_version("cancer") == 2
    assert meta.task == "binary" and meta.note == "again"
    assert meta.data_summary["positive_class"] == 1 and meta.data_summary["labels"] == [0, 1]
    assert "f1" in meta.metrics and meta.metrics["f1_ci_low"] <= meta.metrics["f1"] <= meta.metrics["f1_ci_high"]
    with open(trained / "river_model.pkl", "rb") as handle:
        exported = pickle.load(handle)
    event = meta.feature_schema().prepare({"mean radius": 13.0, "worst area": 600.0})
    assert model.predict_proba_one(event) == exported.predict_proba_one(event)
    stored = registry.reference("cancer")
    assert stored == ReferenceProfile.from_json((trained / "reference_profile.json").read_text())


def test_register_refuses_a_directory_whose_model_changed_after_training(
    stack, redis_client, trained, tmp_path
) -> None:
    """A river_model.pkl that no longer matches the manifest: one-line error, exit 1, nothing registered."""
    copy = copy_of(trained, tmp_path / "run")
    (copy / "river_model.pkl").write_bytes(pickle.dumps({"not": "the trained model"}))
    result = register(stack, str(copy), "--model", "tampered")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {copy / 'river_model.pkl'} does not match its sha256 in manifest.json"
    assert ModelRegistry(redis_client, TEST_HMAC_KEY.encode(), prefix="driftline:").names() == []


def test_register_of_a_directory_that_is_not_a_training_output_says_so(stack, redis_client, tmp_path) -> None:
    """An empty directory: one-line error naming the missing manifest."""
    result = register(stack, str(tmp_path))
    assert result.exit_code == 1
    assert "has no readable manifest.json" in result.stderr


def test_register_refuses_a_rewritten_directory_with_rewritten_hashes_before_unpickling_anything(
    stack, redis_client, trained, tmp_path
) -> None:
    """Issue 14: a pickle that runs code, put in place with every SHA-256 rewritten to match (manifest and
    online_model.json). The unkeyed hashes all agree, but the manifest's signature does not: refused in one
    line, the pickle never ran, nothing registered."""
    copy = copy_of(trained, tmp_path / "run")
    marker = tmp_path / "code-ran"
    (copy / "river_model.pkl").write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    online = json.loads((copy / "online_model.json").read_text())
    online["sha256"] = sha256_file(copy / "river_model.pkl")
    (copy / "online_model.json").write_text(json.dumps(online))
    manifest = json.loads((copy / "manifest.json").read_text())
    for name in ("river_model.pkl", "online_model.json"):
        manifest["files"][name]["sha256"] = sha256_file(copy / name)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    verify_manifest(copy)  # the unkeyed check alone is fooled: this is what was accepted before
    result = register(stack, str(copy), "--model", "forged")
    assert result.exit_code == 1
    assert result.stderr.strip().startswith(f"Error: {copy / 'manifest.json'} refused: offline-manifest signature")
    assert not marker.exists(), "the forged pickle never ran in the process holding the key"
    assert ModelRegistry(redis_client, TEST_HMAC_KEY.encode(), prefix="driftline:").names() == []


def test_an_unsigned_directory_is_refused_unless_trusted_explicitly(stack, redis_client, trained, tmp_path) -> None:
    """A directory trained without the key: refused, naming --trust-unsigned; accepted with it."""
    copy = copy_of(trained, tmp_path / "run")
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["signature"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    refused = register(stack, str(copy), "--model", "unsigned")
    assert refused.exit_code == 1 and "is not signed" in refused.stderr and "--trust-unsigned" in refused.stderr
    assert ModelRegistry(redis_client, TEST_HMAC_KEY.encode(), prefix="driftline:").names() == []
    trusted = register(stack, str(copy), "--model", "unsigned", "--trust-unsigned")
    assert trusted.exit_code == 0, trusted.output
    assert ModelRegistry(redis_client, TEST_HMAC_KEY.encode(), prefix="driftline:").current_version("unsigned") == 1
