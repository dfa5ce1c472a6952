"""driftline command line: the embedded stack, the worker, producers, and the command groups of each module."""

from __future__ import annotations

import importlib

import click

#: Command groups that live in their own modules: name -> "module:attribute".
SUBCOMMANDS = {
    "offline": "driftline.cli_offline:offline",
    "models": "driftline.cli_models:models",
    "alerts": "driftline.cli_alerts:alerts",
    "bench": "driftline.cli_bench:bench",
    "dlq": "driftline.cli_dlq:dlq",
}


class LazyGroup(click.Group):
    """A group whose sub-groups are imported only when used (keeps ``driftline --help`` fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *SUBCOMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in SUBCOMMANDS:
            module, attribute = SUBCOMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Streaming inference and drift monitoring on Kafka, with Faust, River and Redis.

    Settings come from DRIFTLINE_* environment variables (see README). Without DRIFTLINE_BROKER_URL and
    DRIFTLINE_REDIS_URL, commands use the embedded stack (Tansu broker + redis-server on loopback).
    """
