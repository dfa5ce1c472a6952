"""`driftline offline` bad input: one line on stderr naming the problem, exit status 1, no output written."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.offline.framing import card_to_toml, draft_card


@pytest.fixture
def workspace(tmp_path):
    df = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=40, freq="h").astype(str),
            "amount": [float(i % 7) for i in range(40)],
            "shop": ["a", "b"] * 20,
            "label": [0, 1, 1, 0] * 10,
        }
    )
    df.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "card.toml").write_text(card_to_toml(draft_card(df, "label")))
    return tmp_path


def run(args: list[str], **env):
    return CliRunner().invoke(main, args, env=env or None)


def assert_one_line_error(result, message: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert message in lines[0]


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda ws: (ws / "data.csv").write_text(""), "data.csv is empty"),
        (lambda ws: (ws / "data.csv").write_bytes(b"\xff\xfe\x00\x81garbage\n\x00\xff,,"), "cannot read"),
        (lambda ws: (ws / "data.csv").unlink(), "no such file"),
        (
            lambda ws: edit(ws / "card.toml", 'target = "label"', 'target = "churn"'),
            "target column 'churn' is not in the data",
        ),
        (
            lambda ws: edit(ws / "card.toml", "id = []", 'id = ["customer"]'),
            "the card names column(s) not in the data: 'customer' ([columns] id)",
        ),
        (
            lambda ws: pd.read_csv(ws / "data.csv").assign(amount=None).to_csv(ws / "data.csv", index=False),
            "column 'amount' is entirely empty",
        ),
        (
            lambda ws: pd.read_csv(ws / "data.csv").assign(label=1).to_csv(ws / "data.csv", index=False),
            "target 'label' has a single value (1)",
        ),
        (
            lambda ws: pd.read_csv(ws / "data.csv").assign(ts="soon").to_csv(ws / "data.csv", index=False),
            "time column 'ts' does not parse as a date/time (row 0: 'soon')",
        ),
        (lambda ws: (ws / "card.toml").write_text("[problem\n"), "is not valid TOML"),
    ],
)
def test_train_with_bad_input_fails_in_one_line_and_writes_nothing(workspace, prepare, message) -> None:
    """Empty/unreadable/missing file, missing target, unknown card column, empty column, single-class target,
    unparsable time, broken card: exit 1, one 'Error:' line naming the problem, no DIR, no temporary dir."""
    prepare(workspace)
    before = sorted(p.name for p in workspace.iterdir())
    result = run(
        [
            "offline",
            "train",
            "--data",
            str(workspace / "data.csv"),
            "--framing",
            str(workspace / "card.toml"),
            "--out",
            str(workspace / "out"),
        ]
    )
    assert_one_line_error(result, message)
    assert sorted(p.name for p in workspace.iterdir()) == before


def test_train_refuses_a_non_empty_output_directory_without_force(workspace) -> None:
    """An earlier run's directory is not overwritten by accident."""
    (workspace / "out").mkdir()
    (workspace / "out" / "metrics.json").write_text("{}")
    result = run(
        [
            "offline",
            "train",
            "--data",
            str(workspace / "data.csv"),
            "--framing",
            str(workspace / "card.toml"),
            "--out",
            str(workspace / "out"),
        ]
    )
    assert_one_line_error(result, "is not empty (use --force")
    assert (workspace / "out" / "metrics.json").read_text() == "{}"


def test_frame_writes_an_editable_card_and_prints_the_profile(workspace) -> None:
    """`offline frame` profiles the data (rows, columns, class balance) and writes the card it drafted."""
    result = run(
        [
            "offline",
            "frame",
            "--data",
            str(workspace / "data.csv"),
            "--target",
            "label",
            "--out",
            str(workspace / "new.toml"),
            "--decision",
            "block risky orders",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "40 rows, 4 columns, 0 duplicate rows" in result.stdout
    assert "class balance" in result.stdout
    text = (workspace / "new.toml").read_text()
    assert 'decision = "block risky orders"' in text and 'time = "ts"' in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nope"], "target column 'nope' is not in the data"),
        (["--target", "label", "--out", "card.toml"], "card.toml exists (edit it, or use --force"),
    ],
)
def test_frame_with_bad_input_fails_in_one_line(workspace, args, message) -> None:
    """A missing target or an existing card: one-line error, exit 1, the existing card untouched."""
    before = (workspace / "card.toml").read_text()
    args = [a if a != "card.toml" else str(workspace / "card.toml") for a in args]
    result = run(["offline", "frame", "--data", str(workspace / "data.csv"), *args])
    assert_one_line_error(result, message)
    assert (workspace / "card.toml").read_text() == before


def test_progress_bars_show_on_a_terminal_and_stay_silent_when_piped() -> None:
    """On a terminal each long step is a bar with its description; piped output gets no bars."""
    import io

    from rich.console import Console

    from driftline.offline.progress import RichProgress

    for terminal in (True, False):
        sink = io.StringIO()
        with (
            RichProgress(Console(file=sink, force_terminal=terminal)) as progress,
            progress.task("search + 5-fold CV", total=2) as advance,
        ):
            advance(2)
        assert ("search + 5-fold CV" in sink.getvalue()) is terminal
