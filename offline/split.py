"""Splits without leakage: a locked test set, a bounded search sample, a validation holdout and CV folds.

Time-ordered when the card names a time column (the test set is the most recent rows, folds only look
back), grouped by id with strategy ``group``, stratified on the class (or target quantile bins for
regression) otherwise. The test set is held in a :class:`LockedTestSet`: hashed when split, opened once.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"x": range(100), "y": [0, 1] * 50})
>>> train, test = split_train_test(df, y_codes=df["y"].to_numpy(), strategy="stratified", test_size=0.2, seed=0)
>>> len(train), test.rows, len(test.sha256)
(80, 20, 64)
>>> frame = test.open()
>>> test.open()
Traceback (most recent call last):
...
driftline.offline.split.TestSetReuseError: the locked test set was already used once
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, KFold, StratifiedKFold, TimeSeriesSplit

from driftline.offline.errors import OfflineError

Folds = list[tuple[np.ndarray, np.ndarray]]


class TestSetReuseError(RuntimeError):
    """Raised when the locked test set is opened a second time (or was changed after locking)."""

    __test__ = False  # not a pytest test class


def frame_sha256(df: pd.DataFrame) -> str:
    """SHA-256 over a frame's rows (values and index) and column names.

    >>> frame_sha256(pd.DataFrame({"a": [1]})) == frame_sha256(pd.DataFrame({"a": [2]}))
    False
    """
    digest = hashlib.sha256("\x1f".join(map(str, df.columns)).encode())
    digest.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return digest.hexdigest()


class LockedTestSet:
    """The test rows, hashed at split time; :meth:`open` hands them out exactly once."""

    __test__ = False

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        self.sha256 = frame_sha256(frame)
        self.rows = len(frame)
        self.opened = 0

    def open(self) -> pd.DataFrame:
        """The test frame; a second call, or a frame changed since it was locked, raises."""
        if self.opened:
            raise TestSetReuseError("the locked test set was already used once")
        if frame_sha256(self._frame) != self.sha256:
            raise TestSetReuseError("the locked test set changed after it was locked")
        self.opened += 1
        return self._frame


def strata(y_codes: np.ndarray, task_is_regression: bool, bins: int = 10) -> np.ndarray:
    """Labels to stratify on: classes (classes too rare to split share one stratum) or target deciles.

    >>> strata(np.array([0, 0, 0, 1, 1, 1, 2]), False).tolist()
    [0, 0, 0, 1, 1, 1, -1]
    """
    if task_is_regression:
        ranks = pd.Series(y_codes).rank(method="first").to_numpy()
        return np.minimum((ranks - 1) * bins // len(ranks), bins - 1).astype(int)
    labels = np.asarray(y_codes).astype(int)
    values, counts = np.unique(labels, return_counts=True)
    rare = values[counts < 2]
    return np.where(np.isin(labels, rare), -1, labels)


def split_train_test(
    df: pd.DataFrame,
    *,
    y_codes: np.ndarray,
    strategy: str,
    test_size: float,
    seed: int,
    regression: bool = False,
    order: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> tuple[pd.DataFrame, LockedTestSet]:
    """Train rows and the locked test set. ``order`` (sortable times) is required for ``time``,
    ``groups`` for ``group``. Train rows keep time order for ``time`` and are shuffled otherwise."""
    n = len(df)
    n_test = max(1, int(round(n * test_size)))
    if n - n_test < 2:
        raise OfflineError(f"too few rows ({n}) to hold out a test set")
    positions = np.arange(n)
    if strategy == "time":
        if order is None:
            raise ValueError("a time split needs the time order")
        ranked = np.argsort(np.asarray(order), kind="stable")
        train_pos, test_pos = ranked[: n - n_test], ranked[n - n_test :]
    elif strategy == "group":
        if groups is None:
            raise ValueError("a group split needs group ids")
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        train_pos, test_pos = next(splitter.split(positions, groups=groups))
    else:
        rng = np.random.default_rng(seed)
        if strategy == "stratified":
            labels = strata(y_codes, regression)
            test_pos = np.concatenate(
                [
                    rng.permutation(np.flatnonzero(labels == s))[: int(round((labels == s).sum() * test_size))]
                    for s in np.unique(labels)
                ]
            )
        else:
            test_pos = rng.permutation(n)[:n_test]
        mask = np.zeros(n, dtype=bool)
        mask[test_pos] = True
        train_pos = rng.permutation(np.flatnonzero(~mask))
        test_pos = np.flatnonzero(mask)
    if len(test_pos) == 0 or len(train_pos) < 2:
        raise OfflineError(f"too few rows ({n}) to hold out a test set")
    return df.iloc[train_pos], LockedTestSet(df.iloc[np.sort(test_pos)])


def sample_positions(
    n: int, limit: int, *, y_codes: np.ndarray, regression: bool, time_ordered: bool, seed: int
) -> np.ndarray:
    """At most ``limit`` row positions: the most recent ones when time-ordered, a stratified sample otherwise.

    >>> sample_positions(10, 4, y_codes=np.arange(10) % 2, regression=False, time_ordered=True, seed=0).tolist()
    [6, 7, 8, 9]
    """
    if n <= limit:
        return np.arange(n)
    if time_ordered:
        return np.arange(n - limit, n)
    labels = strata(y_codes, regression)
    rng = np.random.default_rng(seed)
    chosen = []
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        take = max(1, int(round(len(members) * limit / n)))
        chosen.append(rng.choice(members, size=min(take, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def cv_folds(
    n: int,
    *,
    folds: int,
    strategy: str,
    y_codes: np.ndarray,
    regression: bool,
    seed: int,
    groups: np.ndarray | None = None,
) -> Folds:
    """k (train positions, validation positions) pairs: forward-chaining for time, grouped, or stratified."""
    positions = np.arange(n)
    splits: Iterator[tuple[np.ndarray, np.ndarray]]
    if strategy == "time":
        splits = TimeSeriesSplit(n_splits=folds).split(positions)
    elif strategy == "group" and groups is not None:
        splits = GroupKFold(n_splits=min(folds, len(np.unique(groups)))).split(positions, groups=groups)
    elif strategy == "random":
        splits = KFold(n_splits=folds, shuffle=True, random_state=seed).split(positions)
    else:
        labels = strata(y_codes, regression)
        smallest = np.unique(labels, return_counts=True)[1].min()
        if smallest < folds:
            splits = KFold(n_splits=folds, shuffle=True, random_state=seed).split(positions)
        else:
            splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(positions, labels)
    return list(splits)


def holdout(
    n: int,
    *,
    strategy: str,
    y_codes: np.ndarray,
    regression: bool,
    seed: int,
    groups: np.ndarray | None = None,
    fraction: float = 0.2,
) -> tuple[np.ndarray, np.ndarray]:
    """One (fit, validation) split for hyperparameter search: the last ``fraction`` of rows for time order,
    otherwise one fold of a 1/``fraction``-fold split made with a different seed than the CV folds.

    >>> fit, val = holdout(10, strategy="time", y_codes=np.zeros(10), regression=True, seed=0)
    >>> fit.tolist(), val.tolist()
    ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9])
    """
    if strategy == "time":
        cut = n - max(1, int(round(n * fraction)))
        return np.arange(cut), np.arange(cut, n)
    k = max(2, int(round(1 / fraction)))
    return cv_folds(
        n, folds=k, strategy=strategy, y_codes=y_codes, regression=regression, seed=seed + 1, groups=groups
    )[0]
