"""Splits without leakage and the locked test set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.offline.split import TestSetReuseError, cv_folds, sample_positions, split_train_test


def frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"t": rng.permutation(n), "g": rng.integers(0, 50, n), "y": (rng.random(n) < 0.1).astype(int)})


def test_locked_test_set_opens_once_and_detects_a_change_after_locking() -> None:
    """The first open returns the rows; a second open raises; so does a frame modified after the split."""
    df = frame()
    _, test = split_train_test(df, y_codes=df["y"].to_numpy(), strategy="stratified", test_size=0.2, seed=0)
    assert len(test.open()) == test.rows == 200
    with pytest.raises(TestSetReuseError, match="already used once"):
        test.open()
    _, tampered = split_train_test(df, y_codes=df["y"].to_numpy(), strategy="random", test_size=0.2, seed=0)
    tampered._frame.iloc[0, 0] = -1
    with pytest.raises(TestSetReuseError, match="changed after it was locked"):
        tampered.open()


def test_stratified_split_keeps_the_class_share_and_never_shares_a_row() -> None:
    """10% positives overall: 10% in train and in test, and no row index on both sides."""
    df = frame()
    train, test = split_train_test(df, y_codes=df["y"].to_numpy(), strategy="stratified", test_size=0.2, seed=3)
    test_rows = test.open()
    assert set(train.index).isdisjoint(test_rows.index)
    assert len(train) + len(test_rows) == len(df)
    assert test_rows["y"].mean() == pytest.approx(df["y"].mean(), abs=0.01)
    assert train["y"].mean() == pytest.approx(df["y"].mean(), abs=0.01)


def test_time_split_puts_only_later_rows_in_the_test_set_and_keeps_train_in_time_order() -> None:
    """Every test time is after every train time; train rows come in time order."""
    df = frame()
    train, test = split_train_test(
        df, y_codes=df["y"].to_numpy(), strategy="time", test_size=0.25, seed=0, order=df["t"].to_numpy()
    )
    assert test.open()["t"].min() > train["t"].max()
    assert train["t"].is_monotonic_increasing


def test_group_split_keeps_every_group_on_one_side() -> None:
    """With strategy group no id appears in both train and test."""
    df = frame()
    train, test = split_train_test(
        df, y_codes=df["y"].to_numpy(), strategy="group", test_size=0.2, seed=0, groups=df["g"].to_numpy()
    )
    assert set(train["g"]).isdisjoint(set(test.open()["g"]))


def test_time_folds_only_validate_on_rows_after_their_training_rows() -> None:
    """Forward-chaining folds: validation positions all follow the fold's training positions."""
    folds = cv_folds(100, folds=4, strategy="time", y_codes=np.zeros(100), regression=True, seed=0)
    assert len(folds) == 4
    assert all(val.min() > train.max() for train, val in folds)


def test_stratified_folds_cover_every_row_once() -> None:
    """Out-of-fold validation positions of k stratified folds partition the sample."""
    y = np.array([0] * 90 + [1] * 10)
    folds = cv_folds(100, folds=5, strategy="stratified", y_codes=y, regression=False, seed=0)
    assert sorted(np.concatenate([val for _, val in folds]).tolist()) == list(range(100))
    assert all(y[val].sum() == 2 for _, val in folds)


def test_sample_positions_draws_a_stratified_subsample_of_the_requested_size() -> None:
    """1000 rows with 10% positives sampled down to 200 keeps about 20 positives."""
    y = np.array([1] * 100 + [0] * 900)
    positions = sample_positions(1000, 200, y_codes=y, regression=False, time_ordered=False, seed=0)
    assert len(positions) == 200 and y[positions].sum() == 20
