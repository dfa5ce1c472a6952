"""`driftline models` commands."""

from __future__ import annotations

import click


@click.group()
def models() -> None:
    """models commands."""
