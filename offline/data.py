"""Read a table of history (CSV or Parquet) and check it against a framing card before anything is written.

Every problem is an :class:`~driftline.offline.errors.OfflineError` with a one-line message naming it.

Examples
--------
>>> import pandas as pd
>>> from driftline.offline.framing import draft_card
>>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "empty": [None] * 4, "y": [0, 1, 0, 1]})
>>> card = draft_card(df, "y")
>>> card.exclude
('empty',)
>>> check_frame(df, card).equals(df)
True
>>> check_frame(df.drop(columns="y"), card)
Traceback (most recent call last):
...
driftline.offline.errors.OfflineError: target column 'y' is not in the data (columns: x, empty)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from driftline.offline.errors import OfflineError
from driftline.offline.framing import FramingCard, _preview, _reason
from driftline.offline.targets import native

PARQUET_SUFFIXES = (".parquet", ".pq")


def load_table(path: Path) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or Parquet file; raise on a missing, unreadable or empty file."""
    path = Path(path)
    if path.is_dir():
        raise OfflineError(f"cannot read {path}: it is a directory")
    if not path.is_file():
        raise OfflineError(f"cannot read {path}: no such file")
    if path.stat().st_size == 0:
        raise OfflineError(f"{path} is empty")
    try:
        parquet = path.suffix.lower() in PARQUET_SUFFIXES
        df = pd.read_parquet(path) if parquet else pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise OfflineError(f"{path} is empty") from None
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise OfflineError(f"cannot read {path}: {_reason(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own error types for corrupt files
        raise OfflineError(f"cannot read {path}: {_reason(exc)}") from None
    if df.empty:
        raise OfflineError(f"{path} has no data rows")
    df.columns = [str(c) for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        raise OfflineError(f"{path} has duplicate column names")
    return df


def check_frame(df: pd.DataFrame, card: FramingCard) -> pd.DataFrame:
    """Check ``df`` against ``card`` (columns exist, none entirely empty, target has 2+ values, time parses).

    Returns ``df`` unchanged; raises :class:`OfflineError` for the first problem found.
    """
    if df.empty:
        raise OfflineError("the data has no rows")
    if card.target not in df.columns:
        raise OfflineError(f"target column '{card.target}' is not in the data (columns: {_preview(df.columns)})")
    for where, names in card.named_columns.items():
        unknown = [n for n in names if n not in df.columns]
        if unknown:
            raise OfflineError(f"the card names column(s) not in the data: {', '.join(map(repr, unknown))} ({where})")
    target = df[card.target].dropna()
    if target.empty:
        raise OfflineError(f"target column '{card.target}' is entirely empty")
    if target.nunique() < 2:
        raise OfflineError(f"target '{card.target}' has a single value ({native(target.iloc[0])!r}); nothing to learn")
    for name in df.columns:
        if name not in card.exclude and df[name].isna().all():
            raise OfflineError(f"column '{name}' is entirely empty; list it under [columns] exclude in the card")
    if card.task == "binary":
        check_binary_target(target, card)
    elif card.task == "regression" and not pd.api.types.is_numeric_dtype(target):
        raise OfflineError(f"target '{card.target}' is not numeric but the card's task is regression")
    if card.time_column:
        parse_time(df[card.time_column])
    return df


def check_binary_target(target: pd.Series, card: FramingCard) -> None:
    """A binary target has exactly two values, one of which is the card's positive class."""
    classes = {native(v) for v in pd.unique(target)}
    if len(classes) != 2:
        raise OfflineError(f"target '{card.target}' has {len(classes)} values but the card's task is binary")
    if str(card.positive_class) not in {str(c) for c in classes}:
        raise OfflineError(
            f"positive_class {card.positive_class!r} is not a value of target '{card.target}' "
            f"(values: {sorted(map(str, classes))})"
        )


def parse_time(column: pd.Series) -> pd.Series:
    """Sortable times: numbers as they are (epoch), anything else parsed as dates; raise naming a bad row.

    >>> parse_time(pd.Series(["2024-01-02", "2024-01-01"])).dt.day.tolist()
    [2, 1]
    >>> parse_time(pd.Series(["2024-01-02", "soon"], name="ts"))
    Traceback (most recent call last):
    ...
    driftline.offline.errors.OfflineError: time column 'ts' does not parse as a date/time (row 1: 'soon')
    """
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        parsed = column.astype(float)
        if not np.isfinite(parsed.dropna()).all():
            raise OfflineError(f"time column '{column.name}' has non-finite values")
    else:
        text = column.astype("string")
        parsed = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
        bad = parsed.isna() & column.notna()
        if bad.any():
            position = int(np.flatnonzero(bad.to_numpy())[0])
            raise OfflineError(
                f"time column '{column.name}' does not parse as a date/time (row {position}: {column.iloc[position]!r})"
            )
    if parsed.isna().any():
        raise OfflineError(f"time column '{column.name}' has missing values")
    return parsed
