"""`driftline offline` commands: frame a problem, train and evaluate, register the online model.

Every bad input (unreadable or empty file, missing target, unknown column in the card, a column entirely
empty, a single-class target, a time column that does not parse, a non-empty output directory) is a one-line
error and a non-zero exit; ``train`` writes its output directory only when every step succeeded.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from driftline.cli_support import load_settings
from driftline.offline.errors import OfflineError

if TYPE_CHECKING:  # rich is imported by the commands that print tables, not by `driftline --help`
    from rich.table import Table


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input becomes a :class:`click.ClickException` (one line on stderr, exit status 1)."""
    try:
        yield
    except OfflineError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def offline() -> None:
    """Frame a problem, train and evaluate models on history, register the online model for the stream."""


@offline.command()
@click.option("--data", "data", required=True, type=click.Path(path_type=Path), help="CSV or Parquet file.")
@click.option("--target", required=True, help="Column to predict.")
@click.option(
    "--out",
    "out",
    default=Path("framing.toml"),
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where to write the framing card.",
)
@click.option("--decision", default=None, help="The decision the model supports (goes into the card).")
@click.option("--force", is_flag=True, help="Overwrite an existing card.")
def frame(data: Path, target: str, out: Path, decision: str | None, force: bool) -> None:
    """Profile the data and write a framing card to edit before training."""
    from driftline.offline.data import load_table
    from driftline.offline.framing import card_to_toml, draft_card, target_inference
    from driftline.offline.profile import profile_frame

    with one_line_errors():
        if out.exists() and not force:
            raise OfflineError(f"{out} exists (edit it, or use --force to replace it)")
        df = load_table(data)
        card = draft_card(df, target, decision)
        inferred = target_inference(df[target])
        facts = profile_frame(df, target)
        text = card_to_toml(card)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(_profile_table(facts))
    if facts.class_balance:
        balance = Table(title=f"class balance of '{target}'")
        balance.add_column("class")
        balance.add_column("rows", justify="right")
        balance.add_column("share", justify="right")
        for label, count in facts.class_balance.items():
            balance.add_row(label, f"{count:,}", f"{count / facts.rows:.1%}")
        console.print(balance)
    elif facts.target_summary:
        console.print(f"target '{target}': " + ", ".join(f"{k} {v:.4g}" for k, v in facts.target_summary.items()))
    console.print(
        f"{facts.rows:,} rows, {len(facts.columns)} columns, {facts.duplicates:,} duplicate rows; "
        f"task inferred: {inferred.describe()}; metric: {card.primary_metric}",
        highlight=False,
        soft_wrap=True,
    )
    if card.exclude:
        console.print(f"entirely empty, excluded in the card: {', '.join(card.exclude)}")
    console.print(
        f"wrote {out}: edit the decision, costs and go/no-go rule, then "
        f"`driftline offline train --data {data} --framing {out} --out DIR`"
    )


def _profile_table(facts: Any) -> Table:
    from rich.table import Table

    table = Table(title=f"profile: {facts.rows:,} rows")
    for name, justify in (
        ("column", "left"),
        ("dtype", "left"),
        ("kind", "left"),
        ("missing", "right"),
        ("distinct", "right"),
        ("example", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for column in facts.columns:
        table.add_row(
            column.name,
            column.dtype,
            column.kind,
            f"{column.missing:,} ({column.missing_rate:.1%})",
            f"{column.distinct:,}",
            column.example,
        )
    return table


@offline.command()
@click.option("--data", "data", required=True, type=click.Path(path_type=Path), help="CSV or Parquet file.")
@click.option("--framing", "framing", required=True, type=click.Path(path_type=Path), help="Framing card (TOML).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output directory.")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json on stdout instead of a summary.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory (only once training succeeded).")
def train(data: Path, framing: Path, out: Path, as_json: bool, force: bool) -> None:
    """Prepare, split, select, evaluate once on the locked test set, and write models, profile and report.

    With DRIFTLINE_MODEL_HMAC_KEY set, the manifest is signed: `offline register` accepts the directory.
    """
    from driftline.offline.export import sign_manifest
    from driftline.offline.progress import RichProgress
    from driftline.offline.train import train as run_training

    settings = load_settings()
    with one_line_errors(), RichProgress() as progress:
        result = run_training(data, framing, out, force=force, progress=progress)
        if settings.model_hmac_key is not None:
            sign_manifest(out, settings.keyring())
    if as_json:
        click.echo(json.dumps(json.loads((out / "metrics.json").read_text()), sort_keys=True))
        return
    from rich.console import Console

    console = Console()
    for part in _train_summary(result.metrics, out):
        console.print(part)


def _train_summary(m: dict[str, Any], out: Path) -> list[Any]:
    from rich.markup import escape
    from rich.table import Table

    metric = m["primary_metric"]
    table = Table(
        title=f"{m['target']} ({m['task']}): candidates, {m['search']['folds']}-fold CV {metric} "
        f"on {m['search']['rows']:,} training rows"
    )
    table.add_column("candidate")
    table.add_column("role")
    table.add_column(f"CV {metric}", justify="right")
    for c in m["candidates"]:
        mark = " <- chosen" if c["name"] == m["chosen"]["name"] else ""
        table.add_row(c["name"] + mark, c["role"], f"{_num(c['cv_mean'])} ± {_num(c['cv_std'])}")
    test, base, gain, data = m["test"], m["baseline"], m["improvement"], m["data"]
    kinds = ", ".join(f"{name} {kind}" for name, kind in data["features"].items())
    conflicts = ", ".join(f"{name}: {count}" for name, count in data.get("conflicts", {}).items())
    return [
        f"task {m['task']}; schema: {kinds}",
        *([f"dropped {data['conflicting_dropped']:,} conflicting rows ({conflicts})"] if conflicts else []),
        *(f"[yellow]warning[/]: {escape(w)}" for w in m.get("warnings", [])),
        table,
        (
            f"test {metric} {_num(test['value'])} [{_num(test['ci_low'])}, {_num(test['ci_high'])}] on "
            f"{test['rows']:,} locked rows; baseline {base['name']} {_num(base['value'])}; improvement "
            f"{_num(gain['value'])} [{_num(gain['ci_low'])}, {_num(gain['ci_high'])}]\n"
            f"verdict: {m['verdict']['decision'].upper()} ({'; '.join(m['verdict']['reasons'])})\n"
            f"outputs in {out}: metrics.json, model.skops, river_model.pkl, reference_profile.json, report.html"
        ),
    ]


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"


@offline.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--model", "name", default=None, help="Registry name (default: DRIFTLINE_MODEL_NAME).")
@click.option("--prefix", default=None, help="Prefix of the registry's Redis keys (default: the worker's).")
@click.option("--note", default=None, help="Note stored with the version.")
@click.option("--no-promote", is_flag=True, help="Store the version without making it current.")
@click.option(
    "--challenger",
    is_flag=True,
    help="Register DIRECTORY's scikit-learn model instead, as the challenger scored in shadow.",
)
@click.option(
    "--trust-unsigned",
    is_flag=True,
    help="Accept a directory whose manifest is not signed with the key (loading its pickles runs their code).",
)
def register(
    directory: Path,
    name: str | None,
    prefix: str | None,
    note: str | None,
    no_promote: bool,
    challenger: bool,
    trust_unsigned: bool,
) -> None:
    """Store DIRECTORY's River model and reference profile as a new version in the registry (Redis).

    The directory's manifest must be signed with DRIFTLINE_MODEL_HMAC_KEY (`offline train` signs it when the key
    is set); it is checked before any of its files is unpickled.
    """
    from driftline.cli_models import clean_errors, open_registry
    from driftline.offline.register import register_challenger_dir, register_dir

    settings = load_settings()
    registry = open_registry(prefix or settings.redis_prefix)
    with one_line_errors(), clean_errors():
        if challenger:
            version = register_challenger_dir(
                directory, registry, name or settings.model_name, note=note, trust_unsigned=trust_unsigned
            )
        else:
            version = register_dir(
                directory,
                registry,
                name or settings.model_name,
                promote=not no_promote,
                note=note,
                trust_unsigned=trust_unsigned,
            )
    state = "challenger, scored in shadow" if challenger else "current" if not no_promote else "not promoted"
    click.echo(f"registered {version.name} version {version.version} ({state}) from {directory}")


@offline.command()
@click.argument("name", required=False)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the candidate's artifacts (as `offline train` writes them).",
)
@click.option(
    "--since-hours",
    default=24.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Window of labelled rows when no retrain request is pending.",
)
@click.option(
    "--max-rows",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Newest labelled rows to train on.",
)
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
def retrain(name: str | None, out_dir: Path, since_hours: float, max_rows: int, force: bool) -> None:
    """Train on the events and labels the stream joined recently; register a candidate version (not promoted).

    Serves the newest retrain request an alert raised (its time window), else the last --since-hours.
    Then compare it in shadow (`driftline models challenge NAME@VERSION`) or promote it.
    """
    from driftline.cli_models import clean_errors, open_registry
    from driftline.offline.retrain import hours_ago_ms
    from driftline.offline.retrain import retrain as run_retrain

    settings = load_settings()
    registry = open_registry(settings.redis_prefix)
    model = name or settings.model_name
    with one_line_errors(), clean_errors():
        outcome = run_retrain(
            registry.client,
            registry,
            model,
            out_dir,
            since_ms=hours_ago_ms(since_hours),
            max_rows=max_rows,
            force=force,
        )
    served = f" (request {outcome.request.request_id})" if outcome.request else ""
    version = outcome.version.version
    click.echo(
        f"registered {model} version {version} (candidate, not promoted) from {outcome.rows} labelled rows"
        f"{served}; next: driftline models challenge {model}@{version}"
    )
