"""`driftline dlq` commands."""

from __future__ import annotations

import click


@click.group()
def dlq() -> None:
    """dlq commands."""
