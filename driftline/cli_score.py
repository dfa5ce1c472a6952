"""`driftline score`: batch scoring of a CSV or Parquet file with a registered model version."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # imported when the command runs, not by `driftline --help` (see driftline.cli)
    from rich.table import Table

    from driftline.monitoring.batch_drift import FeatureDrift
    from driftline.streams.batch_job import BatchResult


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def drift_table(drift: list[FeatureDrift]) -> Table:
    """The batch's drift summary as a table, one row per feature and the prediction."""
    from rich.table import Table

    table = Table(title="drift of this batch against the reference profile")
    for column in ("feature", "kind", "missing ref→batch", "outside ref", "PSI", "KS", "JS", "p-value", "drift"):
        table.add_column(column, justify="left" if column in ("feature", "kind") else "right")
    for d in drift:
        table.add_row(
            d.feature,
            d.kind,
            f"{d.reference_missing_rate:.1%} → {d.missing_rate:.1%}",
            f"{d.outside_rate:.1%}",
            _fmt(d.psi),
            _fmt(d.ks),
            _fmt(d.js),
            _fmt(d.p_value, 2),
            "[bold red]DRIFT[/]" if d.drifted else "no",
        )
    return table


def _report(result: BatchResult) -> dict:
    report = asdict(result)
    report["out"], report["rejected_path"] = str(result.out), str(result.rejected_path)
    report["drifted"] = [d.feature for d in result.drift if d.drifted]
    return report


@click.command()
@click.option(
    "--data",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV or Parquet file of rows to score: event_id and ts columns optional, every other column a feature.",
)
@click.option(
    "--model", "ref", default=None, help="NAME or NAME@VERSION [default: DRIFTLINE_MODEL_NAME, served version]."
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Parquet file of predictions."
)
@click.option(
    "--rejected",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="JSON-lines file of rejected rows with their reasons [default: OUT's name + .rejected.jsonl].",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(min=1),
    default=None,
    help="Rows read and scored at a time (memory is bounded by the chunk, not the file) [default: 20,000].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome and drift summary as JSON.")
def score(data: Path, ref: str | None, out: Path, rejected: Path | None, chunk_rows: int | None, as_json: bool) -> None:
    """Score a CSV or Parquet file with a registered model version, the way the stream scores events.

    Each row is validated, prepared and scored exactly as a Kafka event with those fields would be (same
    settings, same version, same decision threshold). Predictions go to OUT (Parquet: row, event_id, model,
    model_version, prediction, probabilities, score, confidence); rows the stream would dead-letter go to the
    side file with their stage, error class and reason. The file is read in chunks, so its size is not bounded by
    memory. A drift summary of the batch against the version's reference profile is printed at the end.

    Needs DRIFTLINE_REDIS_URL (the registry) and DRIFTLINE_MODEL_HMAC_KEY. Exit status: 0 done, 1 bad input or
    model, 2 Redis unreachable.

    Example (cron, nightly at 01:00 UTC):

    \b
        0 1 * * * driftline score --data /data/in/events.parquet --model default --out /data/out/scored.parquet
    """
    import redis
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from driftline.cli_support import Unreachable, load_settings, require_key, require_redis
    from driftline.contract.signing import IntegrityError
    from driftline.contract.urls import masked
    from driftline.models.registry import ModelRegistry
    from driftline.models.version import UnknownModelError, parse_ref
    from driftline.streams.batch_job import (
        DEFAULT_CHUNK_ROWS,
        BatchInputError,
        load_for_batch,
        rejected_path_for,
        score_file,
    )
    from driftline.streams.connections import redis_client

    settings = load_settings()
    require_key(settings)
    redis_url = require_redis(settings, "batch scoring reads the model from the registry")
    try:
        name, version = parse_ref(ref or settings.model_name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--model") from None
    registry = ModelRegistry(redis_client(settings, redis_url), settings.keyring(), settings.redis_prefix)
    err = Console(stderr=True)
    try:
        loaded, threshold = load_for_batch(registry, name, version)
        reference = registry.reference(name, loaded.version)
        with Progress(
            TextColumn(f"scoring {data.name} with {name} v{loaded.version}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("score", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, advance=done, total=total)

            result = score_file(
                data,
                out,
                loaded,
                settings,
                threshold=threshold,
                reference=reference,
                rejected_path=rejected or rejected_path_for(out),
                chunk_rows=chunk_rows or DEFAULT_CHUNK_ROWS,
                progress=advance,
            )
    except redis.RedisError as exc:
        raise Unreachable(f"Redis at {masked(settings.redis_url)} unreachable: {type(exc).__name__}: {exc}") from None
    except (UnknownModelError, IntegrityError, BatchInputError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(_report(result), indent=2, default=str))
        return
    console = Console()
    console.print(
        f"scored {result.rows:,} rows of {data} with {name} v{result.version} in {result.seconds:.1f} s: "
        f"{result.scored:,} predictions -> {result.out}, {result.rejected:,} rejected -> {result.rejected_path}"
        + (f" (decision threshold {result.threshold:g})" if result.threshold is not None else "")
    )
    if not result.has_reference:
        console.print(f"no drift summary: {name} v{result.version} has no reference profile")
    elif result.drift:
        console.print(drift_table(result.drift))
