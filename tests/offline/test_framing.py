"""The framing card: inferred from the data, written as editable TOML, read back with clear errors."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from driftline.offline.errors import OfflineError
from driftline.offline.framing import FramingCard, card_to_toml, draft_card, load_card, parse_card


@pytest.mark.parametrize(
    ("loader", "task", "metric", "baseline"),
    [
        (load_breast_cancer, "binary", "f1", "majority"),
        (load_iris, "multiclass", "f1", "majority"),
        (load_diabetes, "regression", "rmse", "mean"),
    ],
)
def test_draft_card_infers_task_metric_and_baseline_from_the_target(loader, task, metric, baseline) -> None:
    """breast_cancer is binary, iris multiclass, diabetes regression; each gets its default metric and baseline."""
    card = draft_card(loader(as_frame=True).frame, "target")
    assert (card.task, card.primary_metric, card.baseline) == (task, metric, baseline)
    assert card.split.strategy == "stratified"


def test_draft_card_of_a_zero_one_target_makes_one_the_positive_class_and_costs_both_errors() -> None:
    """A 0/1 target: positive class 1 (what a stream label means), a cost for each binary error type."""
    card = draft_card(load_breast_cancer(as_frame=True).frame, "target")
    assert card.positive_class == 1
    assert card.costs == {"false_positive": 1.0, "false_negative": 1.0}


def test_draft_card_of_a_text_target_makes_the_rarer_class_positive() -> None:
    """Without a 0/1 convention the rarer class is the event the decision is about."""
    df = pd.DataFrame({"x": range(10), "y": ["ok"] * 7 + ["fraud"] * 3})
    assert draft_card(df, "y").positive_class == "fraud"


def test_draft_card_finds_id_and_time_columns_excludes_empty_ones_and_splits_by_time() -> None:
    """A unique *_id column is an id, a parsable 'created_at' is the time column, an all-null column is excluded."""
    df = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(20)],
            "created_at": pd.date_range("2024-01-01", periods=20, freq="D").astype(str),
            "amount": range(20),
            "notes": [None] * 20,
            "label": [0, 1] * 10,
        }
    )
    card = draft_card(df, "label")
    assert card.id_columns == ("customer_id",)
    assert card.time_column == "created_at"
    assert card.exclude == ("notes",)
    assert card.split.strategy == "time"


def test_card_toml_round_trips_and_carries_comments_for_the_user(tmp_path) -> None:
    """The written card is commented TOML that reads back to the same card, edits included."""
    card = dataclasses.replace(
        draft_card(load_iris(as_frame=True).frame, "target"), min_score=0.8, decision="route flowers", baseline=0.5
    )
    text = card_to_toml(card)
    assert "# primary: f1 | accuracy | roc_auc" in text
    path = tmp_path / "framing.toml"
    path.write_text(text)
    assert load_card(path) == card


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('primary = "f1"', 'primary = "rmse"'), "[metric] primary must be one of"),
        (('strategy = "stratified"', 'strategy = "time"'), "[split] strategy 'time' needs [columns] time"),
        (("folds = 5", "folds = 1"), "[split] folds must be between 2 and 20"),
        (("ensemble = false", "ensemble = false\nfoo = 1"), "unknown key(s) ['foo'] in [training]"),
        (("false_negative = 1.0", "false_negative = -1.0"), "[costs] must be finite and non-negative"),
        (('"river",', '"deep_net",'), "[training] candidates must be among"),
        (("[metric]", "[metric\n"), "is not valid TOML"),
    ],
)
def test_parse_card_rejects_a_bad_edit_with_a_one_line_message(edit, message) -> None:
    """Each bad edit of a valid card raises OfflineError whose single line names the problem."""
    text = card_to_toml(draft_card(load_breast_cancer(as_frame=True).frame, "target"))
    old, new = edit
    assert old in text
    with pytest.raises(OfflineError) as error:
        parse_card(text.replace(old, new, 1))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_binary_card_without_positive_class_is_refused() -> None:
    """Binary needs to know which class is positive (costs and the stream's labels depend on it)."""
    with pytest.raises(OfflineError, match="positive_class is required"):
        FramingCard(
            target="y", task="binary", primary_metric="f1", costs={"false_positive": 1.0, "false_negative": 1.0}
        )


def test_load_card_of_a_missing_file_names_it(tmp_path) -> None:
    """A missing card file is a one-line error naming the path."""
    with pytest.raises(OfflineError, match="cannot read framing card .*nope.toml"):
        load_card(tmp_path / "nope.toml")
