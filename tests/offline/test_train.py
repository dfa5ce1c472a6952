"""`driftline offline train` end to end on data scikit-learn and River ship: binary (breast_cancer, River's
Phishing with a time column), multiclass (wine) and regression (diabetes). No servers are needed."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from river import datasets
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

from driftline.cli import main
from driftline.offline.export import sha256_file, verify_manifest
from driftline.offline.framing import SplitPlan, TrainingPlan, draft_card, load_card
from driftline.offline.skops_model import load_model
from driftline.offline.train import train_frame

OUTPUTS = {
    "metrics.json",
    "model.skops",
    "baseline.skops",
    "river_model.pkl",
    "online_model.json",
    "reference_profile.json",
    "report.html",
    "manifest.json",
}
FAST = TrainingPlan(bootstrap=300)


def check_common(out, metrics) -> None:
    """Every artifact present and hashed; metrics carry CV scores, the test score inside its CI, a verdict."""
    assert {p.name for p in out.iterdir()} == OUTPUTS
    verify_manifest(out)
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert set(manifest) == OUTPUTS - {"manifest.json"}
    assert json.loads((out / "online_model.json").read_text())["sha256"] == sha256_file(out / "river_model.pkl")
    assert all(len(c["cv_scores"]) == metrics["search"]["folds"] for c in metrics["candidates"])
    names = [c["name"] for c in metrics["candidates"]]
    assert names[:2] in (["majority", "linear"], ["mean", "linear"]) and "river" in names
    assert "hist_gradient_boosting" in names
    test = metrics["test"]
    assert test["ci_low"] <= test["value"] <= test["ci_high"]
    assert metrics["baseline"]["value"] is not None
    assert metrics["split"]["test_set_opened"] == 1 and len(metrics["split"]["test_sha256"]) == 64
    assert metrics["verdict"]["decision"] in ("go", "no-go")
    html = (out / "report.html").read_text()
    assert not re.search(r"(src|href)=['\"]?https?:", html), "the report must not load anything from the network"
    assert "<script" not in html


def test_binary_breast_cancer_through_the_cli_goes_with_a_confident_interval(tmp_path) -> None:
    """frame -> train --json on breast_cancer: F1 well above the majority baseline, GO, a cost-based
    threshold, ROC/PR and confusion plots in a self-contained report."""
    load_breast_cancer(as_frame=True).frame.to_csv(tmp_path / "cancer.csv", index=False)
    runner = CliRunner()
    framed = runner.invoke(
        main,
        [
            "offline",
            "frame",
            "--data",
            str(tmp_path / "cancer.csv"),
            "--target",
            "target",
            "--out",
            str(tmp_path / "card.toml"),
        ],
    )
    assert framed.exit_code == 0, framed.output
    text = (tmp_path / "card.toml").read_text().replace("false_negative = 1.0", "false_negative = 5.0")
    (tmp_path / "card.toml").write_text(text.replace("bootstrap = 1000", "bootstrap = 300"))
    result = runner.invoke(
        main,
        [
            "offline",
            "train",
            "--data",
            str(tmp_path / "cancer.csv"),
            "--framing",
            str(tmp_path / "card.toml"),
            "--out",
            str(tmp_path / "run"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    check_common(tmp_path / "run", metrics)
    assert metrics["task"] == "binary" and metrics["primary_metric"] == "f1"
    assert metrics["test"]["ci_low"] > 0.85
    constants = metrics["baseline"]["constant_scores_on_training_labels"]  # the better constant is the bar
    assert constants[metrics["baseline"]["name"]] == max(constants.values()) > 0.7
    assert metrics["verdict"]["go"] is True
    assert 0.0 < metrics["threshold"]["value"] < 0.5  # missed positives cost 5x: threshold below 0.5
    assert len(metrics["test"]["secondary"]["confusion_matrix"]) == 2
    assert abs(metrics["split"]["test_rows"] - 569 * 0.2) <= 1  # 20% of each class, rounded per class
    html = (tmp_path / "run" / "report.html").read_text()
    shap_plot = 1 if metrics["explanations"]["shap"] else 0  # with the [explain] extra and a tree model
    assert len(re.findall("data:image/png;base64,", html)) == 8 + shap_plot  # + importance, effects, calibration
    assert "all 30 features, most important first" in html  # every feature's distribution is drawn
    assert len(metrics["explanations"]["permutation_importance"]) == 30


def test_multiclass_wine_reports_macro_f1_and_a_three_by_three_confusion_matrix(tmp_path) -> None:
    """Wine (3 classes) trained from a DataFrame with the optional ensemble: macro F1 with CI, GO over majority,
    the ensemble scored in CV, and the saved model predicts the original class values."""
    df = load_wine(as_frame=True).frame
    card = dataclasses.replace(draft_card(df, "target"), training=dataclasses.replace(FAST, ensemble=True))
    metrics = train_frame(df, card, tmp_path / "run").metrics
    check_common(tmp_path / "run", metrics)
    ensemble = next(c for c in metrics["candidates"] if c["name"] == "ensemble")
    assert len(ensemble["params"]["members"]) == 2 and len(ensemble["cv_scores"]) == metrics["search"]["folds"]
    assert metrics["task"] == "multiclass" and metrics["threshold"] is None
    assert np.asarray(metrics["test"]["secondary"]["confusion_matrix"]).shape == (3, 3)
    assert metrics["verdict"]["go"] is True
    model = load_model(tmp_path / "run" / "model.skops")
    assert set(model.predict(df.drop(columns="target").head(30))) <= {0, 1, 2}


def test_regression_diabetes_beats_the_mean_baseline_with_lower_rmse(tmp_path) -> None:
    """Diabetes: RMSE of the chosen model below the mean baseline's, improvement CI above zero, GO."""
    df = load_diabetes(as_frame=True).frame
    card = dataclasses.replace(draft_card(df, "target"), training=FAST)
    metrics = train_frame(df, card, tmp_path / "run").metrics
    check_common(tmp_path / "run", metrics)
    assert metrics["primary_metric"] == "rmse" and metrics["baseline"]["name"] == "mean"
    assert metrics["test"]["value"] < metrics["baseline"]["value"]
    assert metrics["improvement"]["ci_low"] > 0
    assert metrics["verdict"]["go"] is True
    assert {"rmse", "mae", "r2"} <= set(metrics["test"]["secondary"])


def test_phishing_with_a_time_column_splits_by_time_and_an_impossible_card_says_no_go(tmp_path) -> None:
    """River's Phishing with timestamps: the locked test set holds only the latest rows; a card asking for
    F1 >= 0.99 gets NO-GO with the reason."""
    rows = [{**x, "label": y} for x, y in datasets.Phishing()]
    df = pd.DataFrame(rows)
    df.insert(0, "ts", pd.date_range("2024-01-01", periods=len(df), freq="min").astype(str))
    card = draft_card(df, "label")
    assert card.time_column == "ts" and card.positive_class is True
    card = dataclasses.replace(card, min_score=0.99, training=FAST, split=SplitPlan(strategy="time", folds=3))
    metrics = train_frame(df, card, tmp_path / "run").metrics
    check_common(tmp_path / "run", metrics)
    split = metrics["split"]
    assert split["strategy"] == "time" and split["train_time_last"] < split["test_time_first"]
    assert metrics["verdict"]["go"] is False
    assert any("misses the card's minimum 0.99" in r for r in metrics["verdict"]["reasons"])


def test_a_failure_while_writing_outputs_leaves_no_directory(tmp_path, monkeypatch) -> None:
    """If the report cannot be rendered after training, neither DIR nor a temporary directory remains."""
    import driftline.offline.train

    def broken(*args, **kwargs):
        raise RuntimeError("matplotlib exploded")

    monkeypatch.setattr(driftline.offline.train, "render_report", broken)
    df = load_diabetes(as_frame=True).frame
    card = dataclasses.replace(
        draft_card(df, "target"), training=TrainingPlan(candidates=("linear",), bootstrap=50), split=SplitPlan(folds=2)
    )
    with pytest.raises(RuntimeError, match="matplotlib exploded"):
        train_frame(df, card, tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_card_written_by_frame_is_what_train_reads(tmp_path) -> None:
    """The card file round-trips through the CLI without edits."""
    df = load_wine(as_frame=True).frame
    df.to_csv(tmp_path / "wine.csv", index=False)
    result = CliRunner().invoke(
        main,
        [
            "offline",
            "frame",
            "--data",
            str(tmp_path / "wine.csv"),
            "--target",
            "target",
            "--out",
            str(tmp_path / "card.toml"),
        ],
    )
    assert result.exit_code == 0
    assert load_card(tmp_path / "card.toml") == draft_card(pd.read_csv(tmp_path / "wine.csv"), "target")


def test_when_the_card_baseline_is_the_chosen_model_the_verdict_is_no_go(tmp_path) -> None:
    """Baseline 'linear' and nothing better than linear: zero improvement, NO-GO saying so."""
    df = load_diabetes(as_frame=True).frame
    card = dataclasses.replace(
        draft_card(df, "target"),
        baseline="linear",
        split=SplitPlan(folds=2),
        training=TrainingPlan(candidates=("linear",), bootstrap=50),
    )
    metrics = train_frame(df, card, tmp_path / "run").metrics
    assert metrics["chosen"]["name"] == metrics["baseline"]["name"] == "linear"
    assert metrics["improvement"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    assert metrics["verdict"]["go"] is False
    assert metrics["verdict"]["reasons"][0] == "no candidate beat the card's baseline (linear) in cross-validation"


def test_one_question_mark_and_one_stray_label_do_not_change_a_columns_kind_or_the_task(tmp_path) -> None:
    """A CSV whose 'mean radius' has one '?' cell and whose 0/1 target has one '2': frame infers binary, train
    keeps 'mean radius' numeric and drops the two conflicting rows with a count, printed and in metrics.json."""
    df = load_breast_cancer(as_frame=True).frame[["mean radius", "mean texture", "target"]]
    df = df.astype({"mean radius": object, "target": object})
    df.loc[10, "mean radius"], df.loc[20, "target"] = "?", 2
    df.to_csv(tmp_path / "dirty.csv", index=False)
    runner = CliRunner()
    args = ["--data", str(tmp_path / "dirty.csv")]
    framed = runner.invoke(main, ["offline", "frame", *args, "--target", "target", "--out", str(tmp_path / "c.toml")])
    assert framed.exit_code == 0, framed.output
    assert load_card(tmp_path / "c.toml").task == "binary"
    assert "task inferred: binary from 569 labels (classes 0, 1); 1 stray label (2: 1)" in framed.output
    (tmp_path / "c.toml").write_text((tmp_path / "c.toml").read_text().replace("bootstrap = 1000", "bootstrap = 100"))
    result = runner.invoke(
        main, ["offline", "train", *args, "--framing", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.output
    assert "dropped 2 conflicting rows (mean radius: 1, target: 1)" in result.output
    assert "task binary; schema: mean radius numeric, mean texture numeric" in result.output
    data = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]
    assert data["features"] == {"mean radius": "numeric", "mean texture": "numeric"}
    assert (data["rows_read"], data["conflicting_dropped"], data["rows_used"]) == (569, 2, 567)


def test_a_useless_model_cannot_pass_the_default_f1_go_no_go(tmp_path) -> None:
    """Noise features only, 35% positives, F1 (the default binary metric) and missed positives costing 5x: the
    cost threshold makes any model predict nearly everything positive, whose F1 (~0.5) beat the majority
    baseline's 0 and said GO. Against the better constant (always positive) it is NO-GO."""
    rng = np.random.default_rng(11)
    n = 900
    df = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(4)})
    df["label"] = np.where(rng.random(n) < 0.35, "yes", "no")
    card = dataclasses.replace(
        draft_card(df, "label"),
        positive_class="yes",
        costs={"false_positive": 1.0, "false_negative": 5.0},
        split=SplitPlan(folds=3),
        training=TrainingPlan(candidates=("linear",), bootstrap=200),
    )
    metrics = train_frame(df, card, tmp_path / "run").metrics
    assert card.primary_metric == "f1" and metrics["baseline"]["name"] == "always_positive"
    assert metrics["improvement"]["ci_low"] <= 0 and metrics["verdict"]["go"] is False
    assert "always_positive" in metrics["go_no_go_rule"]


def test_duplicates_are_kept_and_counted_by_default_and_dropped_only_when_the_card_says_so() -> None:
    """River's Phishing holds 587 exact duplicates among 1,250 rows; dropping them silently changed the class
    balance. Kept by default (counted); dropped with [training] drop_duplicates = true."""
    from driftline.offline.train import prepare_rows

    df = pd.DataFrame([{**x, "label": y} for x, y in datasets.Phishing()])
    card = draft_card(df, "label")
    kept = prepare_rows(df, card)
    assert (kept.duplicates, kept.rows_used) == (587, 1250)
    assert kept.frame["label"].mean() == df["label"].mean()  # the class balance of the data
    dropped = prepare_rows(df, dataclasses.replace(card, training=TrainingPlan(drop_duplicates=True)))
    assert (dropped.duplicates, dropped.rows_used) == (587, 663)
    assert dropped.frame["label"].mean() != df["label"].mean()
