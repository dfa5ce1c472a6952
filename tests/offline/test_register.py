"""`driftline offline register DIR` against the real embedded redis-server: the River model and its reference
profile become a new, current, signed registry version the scorers load."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer

from driftline.cli import main
from driftline.models.reference import ReferenceProfile
from driftline.models.registry import ModelRegistry
from driftline.offline.framing import SplitPlan, TrainingPlan, draft_card
from driftline.offline.train import train_frame
from tests.conftest import TEST_HMAC_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    df = load_breast_cancer(as_frame=True).frame
    card = dataclasses.replace(
        draft_card(df, "target"), split=SplitPlan(folds=3), training=TrainingPlan(candidates=("linear",), bootstrap=100)
    )
    out = tmp_path_factory.mktemp("register") / "run"
    train_frame(df, card, out)
    return out


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
    copy = tmp_path / "run"
    copy.mkdir()
    for path in trained.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
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
