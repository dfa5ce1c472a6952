"""Reading history and checking it against the card: every bad input is one line naming the problem."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from driftline.offline.data import check_frame, load_table
from driftline.offline.errors import OfflineError
from driftline.offline.framing import draft_card


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=8, freq="h").astype(str),
            "amount": [1.0, 2.5, 3.0, 4.5, 5.0, 6.5, 7.0, 8.5],
            "country": list("ababcabc"),
            "label": [0, 1, 0, 1, 0, 1, 1, 0],
        }
    )


def test_load_table_reads_csv_and_parquet_to_the_same_frame(tmp_path) -> None:
    """CSV and Parquet of the same data load equal (columns, values, dtypes of numbers)."""
    df = frame()
    df.to_csv(tmp_path / "h.csv", index=False)
    df.to_parquet(tmp_path / "h.parquet", index=False)
    csv, parquet = load_table(tmp_path / "h.csv"), load_table(tmp_path / "h.parquet")
    assert list(csv.columns) == list(parquet.columns) == list(df.columns)
    assert csv["amount"].tolist() == parquet["amount"].tolist() == df["amount"].tolist()


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (b"", ".csv", "is empty"),
        (b"a,b,label\n", ".csv", "has no data rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00garbage", ".parquet", "cannot read"),
        (b"\xff\xfe\x00\x81\x00\x82garbage,\n\x00\xff", ".csv", "cannot read"),
    ],
)
def test_load_table_refuses_empty_and_unreadable_files(tmp_path, content, suffix, message) -> None:
    """Empty, header-only, corrupt Parquet and binary 'CSV' files: OfflineError naming the file."""
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    with pytest.raises(OfflineError, match=message) as error:
        load_table(path)
    assert str(path) in str(error.value)


def test_load_table_of_a_missing_path_or_a_directory_says_which(tmp_path) -> None:
    """A path that does not exist is 'no such file'; a directory is 'it is a directory'."""
    with pytest.raises(OfflineError, match="no such file"):
        load_table(tmp_path / "absent.csv")
    with pytest.raises(OfflineError, match="it is a directory"):
        load_table(tmp_path)


def test_check_frame_accepts_data_matching_its_card() -> None:
    """The card drafted from the data passes the check and the frame comes back unchanged."""
    df = frame()
    assert check_frame(df, draft_card(df, "label")) is df


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df, card: (df.drop(columns="label"), card), "target column 'label' is not in the data"),
        (lambda df, card: (df.assign(label=1), card), "target 'label' has a single value (1)"),
        (lambda df, card: (df.assign(label=None), card), "target column 'label' is entirely empty"),
        (lambda df, card: (df.assign(amount=None), card), "column 'amount' is entirely empty"),
        (
            lambda df, card: (df, dataclasses.replace(card, id_columns=("client",))),
            "the card names column(s) not in the data: 'client' ([columns] id)",
        ),
        (lambda df, card: (df, dataclasses.replace(card, exclude=("zzz",))), "'zzz' ([columns] exclude)"),
        (
            lambda df, card: (df.assign(ts=["2024-01-01"] * 7 + ["next tuesday-ish"]), card),
            "time column 'ts' does not parse as a date/time (row 7: 'next tuesday-ish')",
        ),
        (lambda df, card: (df, dataclasses.replace(card, positive_class=7)), "positive_class 7 is not a value"),
        (lambda df, card: (df.assign(label=[0, 1, 2, 0, 1, 2, 0, 1]), card), "has 3 values but the card's task is"),
    ],
)
def test_check_frame_names_each_bad_input_in_one_line(mutate, message) -> None:
    """Missing/one-class/empty target, empty column, unknown card column, unparsable time, bad positive class."""
    df, card = frame(), draft_card(frame(), "label")
    bad_df, bad_card = mutate(df, card)
    with pytest.raises(OfflineError) as error:
        check_frame(bad_df, bad_card)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
