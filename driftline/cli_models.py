"""`driftline models` commands: list, show, promote, roll back, compare, prune and re-sign registered models.

They talk to the Redis of ``DRIFTLINE_REDIS_URL`` with the key of ``DRIFTLINE_MODEL_HMAC_KEY``. Every error
(unknown model, bad ``NAME@VERSION``, a blob failing verification, Redis unreachable) is one line on stderr and
a non-zero exit.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from driftline.cli_support import Unreachable, load_settings, no_permission_line, require_key, require_redis

if TYPE_CHECKING:  # the modules below are imported by the commands that run, not by `driftline --help`
    from driftline.models.registry import ModelRegistry
    from driftline.models.version import ModelVersion


def iso(ms: int | None) -> str:
    """Epoch milliseconds as an ISO-8601 UTC time.

    >>> iso(1767225600000)
    '2026-01-01T00:00:00Z'
    """
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt(value: Any) -> str:
    """A number for humans (4 significant digits), ``-`` for None.

    >>> fmt(0.123456), fmt(None), fmt(3)
    ('0.1235', '-', '3')
    """
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@contextlib.contextmanager
def clean_errors() -> Iterator[None]:
    """Turn expected failures into one-line :class:`click.ClickException` s (no traceback)."""
    import redis

    from driftline.contract.signing import IntegrityError
    from driftline.models.version import UnknownModelError

    try:
        yield
    except (UnknownModelError, IntegrityError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unreachable(f"Redis error: {type(exc).__name__}: {exc}; check DRIFTLINE_REDIS_URL") from None
    except redis.exceptions.NoPermissionError as exc:
        raise Unreachable(no_permission_line(exc)) from None
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis error: {type(exc).__name__}: {exc}") from None


def open_registry(prefix: str | None) -> ModelRegistry:
    """The registry of the configured Redis (ClickException when settings or Redis are unusable)."""
    from driftline.models.registry import ModelRegistry
    from driftline.streams.connections import redis_client

    settings = load_settings()
    require_redis(settings, "the model registry is there")
    require_key(settings)
    with clean_errors():
        keyring = settings.keyring()
        client = redis_client(settings, settings.redis_url)
        client.ping()
    return ModelRegistry(client, keyring, prefix=prefix or settings.redis_prefix)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def summary(registry: ModelRegistry, name: str) -> dict[str, Any]:
    """One row of ``models list``."""
    versions = registry.versions(name)
    current = registry.current_version(name)
    latest: ModelVersion | None = versions[-1] if versions else None
    return {
        "name": name,
        "current": current,
        "versions": len(versions),
        "latest": latest.version if latest else None,
        "task": latest.task if latest else None,
        "updated_ms": latest.created_ms if latest else None,
    }


@click.group()
@click.option(
    "--prefix", default=None, help="Prefix of the registry's Redis keys [default: topic prefix with ':', driftline:]."
)
@click.pass_context
def models(ctx: click.Context, prefix: str | None) -> None:
    """Registered models: list, show, promote, roll back, compare champion and challenger, prune, re-sign."""
    ctx.obj = {"prefix": prefix}


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_models(obj: dict[str, Any], as_json: bool) -> None:
    """List registered models with their current and latest versions."""
    registry = open_registry(obj["prefix"])
    with clean_errors():
        rows = [summary(registry, name) for name in registry.names()]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no models registered yet")
        return
    click.echo(f"{'NAME':<24} {'CURRENT':>7} {'LATEST':>6} {'VERSIONS':>8}  {'TASK':<10} UPDATED")
    for r in rows:
        click.echo(
            f"{r['name']:<24} {fmt(r['current']):>7} {fmt(r['latest']):>6} {r['versions']:>8}  "
            f"{fmt(r['task']):<10} {iso(r['updated_ms'])}"
        )


@models.command()
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show(obj: dict[str, Any], ref: str, as_json: bool) -> None:
    """Show a version's metadata (the current one without @VERSION) after verifying its signature."""
    from driftline.models.version import parse_ref

    registry = open_registry(obj["prefix"])
    with clean_errors():
        name, version = parse_ref(ref)
        meta = registry.verify(name, version)
        current = registry.current_version(name)
        details = {
            **asdict(meta),
            "current": meta.version == current,
            "history": registry.history(name),
            "has_reference": registry.reference(name, meta.version) is not None,
            "integrity": "verified",
        }
    if as_json:
        emit_json(details)
        return
    click.echo(f"{meta.name}@{meta.version}{'  (current)' if details['current'] else ''}")
    click.echo(f"  task        {meta.task}")
    click.echo(f"  parent      {fmt(meta.parent)}")
    click.echo(f"  created     {iso(meta.created_ms)}")
    click.echo(f"  integrity   verified (sha256 {meta.sha256[:16]}…, signed by key {meta.hmac.partition(':')[0]})")
    click.echo(f"  features    {', '.join(f'{k}:{v}' for k, v in meta.schema.items())}")
    click.echo(f"  metrics     {', '.join(f'{k}={fmt(v)}' for k, v in meta.metrics.items()) or '-'}")
    click.echo(f"  reference   {'yes' if details['has_reference'] else 'no'}")
    click.echo(f"  promotions  {' -> '.join(map(str, details['history'])) or '-'}")
    if meta.data_summary:
        from driftline.monitoring.cbpe import SUMMARY_FIELD  # the registry has loaded numpy and scipy

        summary = dict(meta.data_summary)
        if isinstance(summary.get(SUMMARY_FIELD), str):  # its map is hundreds of numbers: the method and size
            calibrator = json.loads(summary[SUMMARY_FIELD])
            summary[SUMMARY_FIELD] = f"{calibrator.get('method')}, {len(calibrator.get('x', ()))} points"
        click.echo(f"  data        {json.dumps(summary, sort_keys=True)}")
    if meta.note:
        click.echo(f"  note        {meta.note}")


@models.command()
@click.argument("ref", metavar="NAME@VERSION")
@click.pass_obj
def promote(obj: dict[str, Any], ref: str) -> None:
    """Make NAME@VERSION the version scorers serve (its signature is verified first)."""
    from driftline.models.version import parse_ref

    registry = open_registry(obj["prefix"])
    with clean_errors():
        name, version = parse_ref(ref)
        if version is None:
            raise ValueError(f"promote needs NAME@VERSION, got {ref!r}")
        before = registry.current_version(name)
        meta = registry.promote(name, version)
    click.echo(f"promoted {name}@{meta.version} (was {fmt(before)})")


@models.command()
@click.argument("ref")
@click.option("--clear", is_flag=True, help="Stop shadow scoring: NAME has no challenger any more.")
@click.pass_obj
def challenge(obj: dict[str, Any], ref: str, clear: bool) -> None:
    """Score NAME@VERSION in shadow beside the current version (compare them with `models compare NAME`).

    A River challenger also learns the labels in shadow; its snapshots replace it as the challenger.
    """
    from driftline.models.version import parse_ref

    registry = open_registry(obj["prefix"])
    with clean_errors():
        name, version = parse_ref(ref)
        if clear:
            registry.set_challenger(name, None)
            click.echo(f"{name} has no challenger")
            return
        if version is None:
            raise ValueError(f"challenge needs NAME@VERSION, got {ref!r}")
        registry.get(name, version)
        registry.set_challenger(name, version)
    click.echo(f"{name}@{version} is scored in shadow against the current version")


@models.command()
@click.argument("name")
@click.pass_obj
def rollback(obj: dict[str, Any], name: str) -> None:
    """Serve the previously promoted version of NAME again."""
    from driftline.models.version import parse_ref

    registry = open_registry(obj["prefix"])
    with clean_errors():
        if "@" in name:
            raise ValueError(f"rollback takes a model NAME without @VERSION, got {name!r}")
        parse_ref(name)
        before = registry.current_version(name)
        meta = registry.rollback(name)
    click.echo(f"rolled back {name}: {fmt(before)} -> {meta.version}")


@models.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def compare(obj: dict[str, Any], name: str, as_json: bool) -> None:
    """Champion vs challenger on the same labels, as last stored by the streaming learner."""
    from driftline.models.champion import load_comparison
    from driftline.models.version import parse_ref

    registry = open_registry(obj["prefix"])
    with clean_errors():
        parse_ref(name)
        result = load_comparison(registry.client, registry.prefix, name)
    if result is None:
        raise click.ClickException(f"no challenger data yet for model {name!r}")
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"{name}: champion v{fmt(result.get('champion_version'))} vs "
        f"challenger v{fmt(result.get('challenger_version'))} on {result['n']} paired labels "
        f"(window {result['window']}, {result['seen']} seen)"
    )
    click.echo(
        f"  mean loss   champion {fmt(result['champion_loss'])}   challenger {fmt(result['challenger_loss'])}"
        f"   difference {fmt(result['difference'])}"
    )
    click.echo(f"  {result['test']} test   p={fmt(result['p_value'])} (alpha {result['alpha']})")
    click.echo(f"  winner      {result['winner'] or 'none (not significant)'}")
    click.echo(f"  updated     {iso(result.get('updated_ms'))}")


@models.command()
@click.argument("names", nargs=-1)
@click.pass_obj
def resign(obj: dict[str, Any], names: tuple[str, ...]) -> None:
    """Re-sign versions and checkpoints (learner, challenger, monitors) with the current key (key rotation).

    Every model, or only NAMES. Run it once every worker signs with the new DRIFTLINE_MODEL_HMAC_KEY and still
    verifies with the old one (DRIFTLINE_MODEL_HMAC_OLD_KEYS); afterwards the old key can go. Anything that does
    not verify stops it with one line (nothing unverified is ever re-signed).
    """
    from driftline.models.resign import resign_model
    from driftline.models.version import parse_ref

    registry = open_registry(obj["prefix"])
    with clean_errors():
        for name in names or registry.names():
            parse_ref(name)
            done = resign_model(registry, name)
            click.echo(
                f"{name}: {len(done.versions)} versions and {len(done.checkpoints)} checkpoints re-signed "
                f"with key {registry.keyring.current_id}"
            )


@models.command()
@click.argument("names", nargs=-1)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    default=None,
    help="Newest versions kept of each model [default: DRIFTLINE_KEEP_VERSIONS].",
)
@click.pass_obj
def prune(obj: dict[str, Any], names: tuple[str, ...], keep: int | None) -> None:
    """Delete old versions of every model (or only NAMES): all but the newest --keep, the pinned ones (promoted
    by hand, offline or by a challenger), the current one, the challenger and the versions a learner's checkpoint
    stands on. The learner does this after each snapshot; run it once to trim a registry grown before."""
    from driftline.models.version import parse_ref
    from driftline.streams.learner_state import checkpointed_versions

    registry = open_registry(obj["prefix"])
    keep = keep or load_settings().keep_versions
    with clean_errors():
        for name in names or registry.names():
            parse_ref(name)
            pruned = registry.prune(name, keep, checkpointed_versions(registry.client, registry.prefix, name))
            left = len(registry.versions(name))
            click.echo(f"{name}: {len(pruned)} versions pruned, {left} kept")
