"""The chosen model's skops file: every pipeline the candidates build round-trips and scores identically, and a
file naming a type outside the allow-list is refused before any object of it is built."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.datasets import load_breast_cancer

from driftline.models.features import FeatureSchema
from driftline.offline.candidates import AveragingEnsemble, TrainedModel, make_estimator
from driftline.offline.errors import OfflineError
from driftline.offline.skops_model import CHOSEN_MODEL, LEGACY_CHOSEN_MODEL, load_model, save_model


class TouchOnLoad:
    """An object whose rebuilding creates a file: proof of whether loading ran its code."""

    def __init__(self, path: str):
        self.path = path

    def __setstate__(self, state: dict) -> None:
        Path(state["path"]).touch()
        self.__dict__.update(state)


def frame() -> tuple[pd.DataFrame, np.ndarray, FeatureSchema]:
    data = load_breast_cancer(as_frame=True).frame.head(200)
    X = data[["mean radius", "mean texture"]].assign(site=np.where(data["mean area"] > 600, "big", None))  # noqa: N806
    return (
        X,
        data["target"].to_numpy(),
        FeatureSchema({"mean radius": "numeric", "mean texture": "numeric", "site": "categorical"}),
    )


@pytest.mark.parametrize("name", ["linear", "hist_gradient_boosting", "random_forest", "majority", "river", "ensemble"])
def test_every_candidate_round_trips_and_scores_identically(tmp_path, name) -> None:
    X, y, schema = frame()  # noqa: N806
    build = lambda n: make_estimator(n, {}, schema=schema, task="binary", labels=[0, 1], seed=0)  # noqa: E731
    estimator = AveragingEnsemble([("linear", build("linear")), ("river", build("river"))], "binary", 2)
    estimator = (estimator if name == "ensemble" else build(name)).fit(X, y)
    model = TrainedModel(name, estimator, "binary", [0, 1], 0.5, list(X.columns))
    loaded = load_model(save_model(tmp_path / CHOSEN_MODEL, model))
    assert type(loaded) is TrainedModel and loaded.labels == [0, 1]
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_a_planted_type_outside_the_allow_list_is_refused_before_any_code_runs(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    planted = TrainedModel("linear", TouchOnLoad(str(marker)), "binary", [0, 1], 0.5, ["x"])
    with pytest.raises(OfflineError, match="outside the skops allow-list: tests.offline.test_skops_model.TouchOnLoad"):
        save_model(tmp_path / CHOSEN_MODEL, planted)
    (tmp_path / CHOSEN_MODEL).write_bytes(skops.io.dumps(planted))  # written by hand, as an attacker would
    with pytest.raises(OfflineError, match=r"refused: it names types outside the allow-list: tests\.offline\."):
        load_model(tmp_path / CHOSEN_MODEL)
    assert not marker.exists(), "nothing of the file was built"
    skops.io.load(tmp_path / CHOSEN_MODEL, trusted=skops.io.get_untrusted_types(file=tmp_path / CHOSEN_MODEL))
    assert marker.exists(), "the planted object does run code when it is trusted: the refusal is what stopped it"


def test_a_directory_of_an_older_release_is_refused_in_one_line_telling_to_train_again(tmp_path) -> None:
    (tmp_path / LEGACY_CHOSEN_MODEL).write_bytes(b"a pickle")
    with pytest.raises(OfflineError) as refused:
        load_model(tmp_path / CHOSEN_MODEL)
    assert "\n" not in str(refused.value) and "run `driftline offline train` again" in str(refused.value)
