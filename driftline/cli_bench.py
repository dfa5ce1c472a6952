"""`driftline bench ...`: benchmarks that time both sides of a ratio in one run and print one JSON line."""

from __future__ import annotations

import importlib
import json
from typing import Any

import click


def _run(module: str, **kwargs: Any) -> None:
    result = importlib.import_module(f"bench.{module}").run(**kwargs)
    click.echo(json.dumps(result, sort_keys=True))


@click.group()
def bench() -> None:
    """Benchmarks (not timed tests): each prints one JSON object on its last line."""


@bench.command()
@click.option("--events", default=50_000, show_default=True, help="Events to push through both sides.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format; kept for symmetry).")
def pipeline(events: int, as_json: bool) -> None:
    """Kafka -> Faust worker -> validate -> score -> Kafka against an in-process River loop."""
    _run("pipeline", events=events)


@bench.command()
@click.option("--rows", default=1_000_000, show_default=True, help="Synthetic rows to train on.")
@click.option("--features", default=20, show_default=True, help="Synthetic feature columns.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def offline(rows: int, features: int, as_json: bool) -> None:
    """Wall time and peak memory of `driftline offline train` with the default candidates."""
    _run("offline", rows=rows, features=features)


@bench.command()
@click.option("--seeds", default=5, show_default=True, help="Seeds per synthetic stream.")
@click.option(
    "--calibration-seeds",
    default=25,
    show_default=True,
    help="Extra stationary error streams per generator (30,000 outcomes each) on which ADWIN's and the "
    "CUSUM's false-alarm rates are measured.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def drift(seeds: int, calibration_seeds: int, as_json: bool) -> None:
    """False alarms, detection delays and monitoring overhead on streams with known drift points."""
    _run("drift", seeds=seeds, calibration_seeds=calibration_seeds)


@bench.command()
@click.option("--events", default=20_000, show_default=True, help="Labelled events to stream.")
@click.option("--delay", default=100, show_default=True, help="Labels arrive this many events late.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def parity(events: int, delay: int, as_json: bool) -> None:
    """Live prequential metric through Kafka against river.evaluate.progressive_val_score."""
    _run("parity", events=events, delay=delay)
