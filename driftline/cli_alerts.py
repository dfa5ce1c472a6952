"""`driftline alerts` commands."""

from __future__ import annotations

import click


@click.group()
def alerts() -> None:
    """alerts commands."""
