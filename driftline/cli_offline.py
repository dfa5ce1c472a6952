"""`driftline offline` commands."""

from __future__ import annotations

import click


@click.group()
def offline() -> None:
    """offline commands."""
