"""`driftline bench ...`: benchmarks that time both sides of a ratio in one run and print one JSON line."""

from __future__ import annotations

import importlib
import json
from typing import Any

import click


def _run(module: str, **kwargs: Any) -> None:
    from driftline.bench.peers import MissingExtras

    try:
        result = importlib.import_module(f"driftline.bench.{module}").run(**kwargs)
    except MissingExtras as exc:
        raise click.ClickException(str(exc)) from exc
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
@click.option("--events", default=100_000, show_default=True, help="Events (and as many labels) to stream.")
@click.option("--fraction", default=0.1, show_default=True, help="Share of events and labels made hostile.")
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Publish the stream in this many parts, each once the one before came out; the worker's RSS is read "
    "after each part, with nothing in flight (the same figure after every part: bounded).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def hostile(events: int, fraction: float, rounds: int, as_json: bool) -> None:
    """`driftline demo` on a stream with hostile values of every kind: valid scored once, hostile dead-lettered,
    the worker's RSS and /metrics series sampled while it runs."""
    _run("hostile", events=events, fraction=fraction, rounds=rounds)


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
@click.option(
    "--live",
    is_flag=True,
    help="The drift and stationary scenarios through the real stack (embedded broker, 4 partitions, 1 and 2 "
    "worker processes, backlog and paced) beside the same events in process; CBPE's estimate error beside "
    "NannyML's when installed.",
)
@click.option("--events", default=20_000, show_default=True, help="Events per scenario (--live).")
@click.option("--rate", default=2000.0, show_default=True, help="Events per second of the paced runs (--live).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def drift(seeds: int, calibration_seeds: int, live: bool, events: int, rate: float, as_json: bool) -> None:
    """False alarms, detection delays and monitoring overhead on streams with known drift points."""
    if live:
        _run("drift_live", n_events=events, rate=rate)
    else:
        _run("drift", seeds=seeds, calibration_seeds=calibration_seeds)


@bench.command()
@click.option("--events", default=20_000, show_default=True, help="Labelled events to stream.")
@click.option("--delay", default=100, show_default=True, help="Labels arrive this many events late.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def parity(events: int, delay: int, as_json: bool) -> None:
    """Live prequential metric through Kafka against river.evaluate.progressive_val_score."""
    _run("parity", events=events, delay=delay)


@bench.command()
@click.option("--events", default=30_000, show_default=True, help="Raw events through the stage.")
@click.option(
    "--explain",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="Also time the stage adding the top K feature contributions to every prediction.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def stage(events: int, explain: int, as_json: bool) -> None:
    """The scoring stage alone (decode, validate, prepare, score, build records): no Kafka, Redis or monitors."""
    _run("stage", events=events, explain=explain)


@bench.command()
@click.option("--rounds", default=5, show_default=True, type=click.IntRange(min=1), help="Starts of each kind.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def cli(rounds: int, as_json: bool) -> None:
    """Start-up of driftline --help, --version and completion beside importing what the commands run."""
    _run("cli", rounds=rounds)


@bench.command()
@click.option("--events", default=60_000, show_default=True, help="Records consumed and produced by each client.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def clients(events: int, as_json: bool) -> None:
    """aiokafka against confluent-kafka for the scorer's source (consume) and sink (produce)."""
    _run("clients", events=events)


@bench.command()
@click.option("--events", default=60_000, show_default=True, help="Events pre-loaded for each run of each system.")
@click.option("--rounds", default=3, show_default=True, help="Runs of each system (interleaved); medians reported.")
@click.option("--rate", default=1000.0, show_default=True, help="Events/s at which latency is measured.")
@click.option("--latency-events", default=5000, show_default=True, help="Events published at --rate per run.")
@click.option(
    "--systems",
    default="driftline,quix,bytewax,raw_confluent",
    show_default=True,
    help="Comma-separated systems to run (the peers need pip install 'driftline[bench]').",
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON line instead of a table.")
def peers(events: int, rounds: int, rate: float, latency_events: int, systems: str, as_json: bool) -> None:
    """driftline's worker against Quix Streams, Bytewax and a raw librdkafka loop on the same events and model."""
    from driftline.bench import peers as bench_peers

    chosen = [s.strip() for s in systems.split(",") if s.strip()]
    try:
        bench_peers.check_installed(chosen)
    except (ValueError, bench_peers.MissingExtras) as exc:
        raise click.ClickException(str(exc)) from exc

    def progress(figures: dict[str, Any]) -> None:
        click.echo(json.dumps(figures, sort_keys=True), err=True)

    try:
        result = bench_peers.run(events, rounds, rate, latency_events, chosen, progress)
    except (ValueError, bench_peers.UntimedRun) as exc:  # too few --events: one line, exit status 1
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    click.echo(
        f"{'system':<14} {'events/s':>10} {'CPU us/ev':>10} {'p50 ms':>8} {'p99 ms':>8} {'missing':>8} {'dupes':>6}"
    )
    for name, f in result["systems"].items():
        click.echo(
            f"{name:<14} {f['eps'] or 0:>10,.0f} {f['cpu_us_per_event'] or 0:>10.1f} {f['p50_ms'] or 0:>8.1f} "
            f"{f['p99_ms'] or 0:>8.1f} {f['missing']:>8} {f['duplicates']:>6}"
        )


@bench.command()
@click.option("--rows", default=1_000_000, show_default=True, help="Rows of the large CSV (the small one has a tenth).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def score(rows: int, as_json: bool) -> None:
    """Wall time, rows/s and peak memory of `driftline score` on a large CSV and on one a tenth of its size."""
    _run("score", rows=rows)


@bench.command()
@click.option("--rate", default=500.0, show_default=True, help="Single-row requests/s of the fixed-rate phase.")
@click.option("--batch-rate", default=50.0, show_default=True, help="100-row requests/s of the fixed-rate phase.")
@click.option("--seconds", default=10.0, show_default=True, help="Length of each fixed-rate phase.")
@click.option("--concurrency", default=8, show_default=True, help="Requests in flight in the as-fast-as-possible runs.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def http(rate: float, batch_rate: float, seconds: float, concurrency: int, as_json: bool) -> None:
    """The worker's V2 inference API (single-row and 100-row requests, p50/p99 at a fixed rate, requests/s)
    against the in-process score of the same rows."""
    _run("http", rate=rate, batch_rate=batch_rate, seconds=seconds, concurrency=concurrency)


@bench.command()
@click.option(
    "--events", default=100_000, show_default=True, help="Events left waiting for their label, then labelled."
)
@click.option(
    "--warmup",
    type=click.IntRange(min=1),
    help="Labelled events before the baseline is measured [default: the 200,000 rows kept for retraining and "
    "10,000 more, so that the baseline is the steady state].",
)
@click.option(
    "--labelled",
    default=1_000_000,
    show_default=True,
    help="Events with their labels of the last phase (worker RSS, versions kept and reload check at 1%, 10% and "
    "100% of them); 0 skips it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def state(events: int, warmup: int | None, labelled: int, as_json: bool) -> None:
    """Redis memory per event waiting for its label, and after every label is learned, against the baseline; the
    live learner's labels/s and CPU per label on those labels as one backlog; then a long labelled stream: worker
    RSS, registry versions kept and reload-check cost as it grows (one worker process on the embedded stack,
    River's Agrawal stream)."""
    _run("state", events=events, labelled=labelled, **({"warmup": warmup} if warmup else {}))


@bench.command()
@click.option("--events", default=20_000, show_default=True, help="Events through one worker, then through several.")
@click.option("--workers", default=2, show_default=True, help="Workers of the second run (they share the partitions).")
@click.option(
    "--learn-labels-per-s",
    default=10_685.0,
    show_default=True,
    help="Labels one model's learner learns per second (learn_labels_per_s of `driftline bench state`; the default "
    "is its live figure in BENCHMARKS.md).",
)
@click.option("--label-coverage", default=0.05, show_default=True, help="Share of events that ever get a label.")
@click.option("--label-delay-s", default=3_600.0, show_default=True, help="How late labels come (seconds).")
@click.option(
    "--label-ttl-s", default=7 * 86_400.0, show_default=True, help="How long an event waits for its label (seconds)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the only output format).")
def capacity(
    events: int,
    workers: int,
    learn_labels_per_s: float,
    label_coverage: float,
    label_delay_s: float,
    label_ttl_s: float,
    as_json: bool,
) -> None:
    """The capacity model of docs/SCALING.md: per-event costs (worker CPU, Kafka and Redis bytes) measured with one
    worker and with several on the embedded stack, and the workers, partitions, Kafka and Redis (memory, masters)
    that 1k, 10k and 100k events/s need."""
    _run(
        "capacity",
        events=events,
        workers=workers,
        learn_labels_per_s=learn_labels_per_s,
        label_coverage=label_coverage,
        label_delay_s=label_delay_s,
        label_ttl_s=label_ttl_s,
    )
