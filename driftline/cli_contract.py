"""`driftline contract export`: the JSON Schemas of the topic records, for producers in other languages."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def contract() -> None:
    """The topic contract: JSON Schemas of the records on every topic."""


@contract.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/contract"),
    show_default=True,
    help="Folder of the TOPIC.schema.json files.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a file is missing or differs from the models.")
def export(out: Path, check: bool) -> None:
    """Write the JSON Schema of each topic's records (generated from the pydantic models) into OUT."""
    from driftline.contract.schemas import stale_schemas, write_schemas

    if check:
        stale = stale_schemas(out)
        if stale:
            raise click.ClickException(f"out of date in {out}: {', '.join(stale)} (run `driftline contract export`)")
        click.echo(f"{out}: every schema is current")
        return
    for path in write_schemas(out):
        click.echo(f"wrote {path}")
