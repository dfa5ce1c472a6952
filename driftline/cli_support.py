"""What every command group shares: settings from the environment, or one clear line and a non-zero exit."""

from __future__ import annotations

import click
from pydantic import ValidationError

from driftline.contract.settings import Settings


def load_settings() -> Settings:
    """The settings of this process; invalid ones become a one-line :class:`click.ClickException`."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise click.ClickException(f"invalid settings: {where + ': ' if where else ''}{message}") from None


class Unreachable(click.ClickException):
    """The broker or Redis cannot be reached (or is not configured): one line on stderr, exit status 2."""

    exit_code = 2
