"""driftline command line: one lazy group; every command lives in its own ``cli_*`` module.

Starting fast is a rule, not a hope: ``driftline --help``, ``driftline --version`` and shell completion import
click and this module, then only the ``cli_*`` modules they list, which import nothing heavy at the top
(numpy, scipy, pandas, scikit-learn and River are imported inside the command that runs;
``tests/cli/test_cli.py`` checks it in a fresh interpreter).

Adding a command (or a group of them):

1. write it in a module ``driftline/cli_<name>.py`` whose top-level imports are click and the standard library
   (import what the command needs inside its function; ``typing.TYPE_CHECKING`` for annotations);
2. add one line ``"name": "driftline.cli_<name>:<attribute>"`` to :data:`SUBCOMMANDS`.

click's documented ``LazyGroup`` pattern resolves the name to the command only when it is listed or run.
"""

from __future__ import annotations

import importlib

import click

#: Every command of ``driftline``: name -> "module:attribute", imported only when listed or run.
SUBCOMMANDS = {
    "demo": "driftline.cli_run:demo",
    "up": "driftline.cli_run:up",
    "worker": "driftline.cli_run:worker",
    "produce": "driftline.cli_run:produce",
    "contract": "driftline.cli_contract:contract",
    "offline": "driftline.cli_offline:offline",
    "models": "driftline.cli_models:models",
    "alerts": "driftline.cli_alerts:alerts",
    "bench": "driftline.cli_bench:bench",
    "dlq": "driftline.cli_dlq:dlq",
    "score": "driftline.cli_score:score",
    "report": "driftline.cli_report:report",
    "status": "driftline.cli_status:status",
    "trace": "driftline.cli_status:trace",
}


class LazyGroup(click.Group):
    """A group whose commands are imported from :data:`SUBCOMMANDS` only when listed or used.

    >>> sorted(LazyGroup(name="x").list_commands(click.Context(click.Command("x")))) == sorted(SUBCOMMANDS)
    True
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in SUBCOMMANDS:
            module, attribute = SUBCOMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attribute)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a broker or Redis connection failure that escaped it becomes one line, exit 2. SIGTERM
        and SIGHUP end it like Ctrl-C: what it started is stopped (:func:`.cli_support.ending_signals_exit`)."""
        from driftline.cli_support import ending_signals_exit

        try:
            with ending_signals_exit():
                return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            from driftline.cli_support import Unreachable, connection_error_line

            line = connection_error_line(exc)
            if line is None:
                raise
            raise Unreachable(line) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="driftline", prog_name="driftline", message="%(prog)s %(version)s")
def main() -> None:
    """Streaming inference and drift monitoring on Kafka, with Faust, River and Redis.

    Settings come from DRIFTLINE_* environment variables (see README). Without DRIFTLINE_BROKER_URL and
    DRIFTLINE_REDIS_URL, commands use the embedded stack (Tansu broker + redis-server on loopback).
    """
