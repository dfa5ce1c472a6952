"""The command line starts fast: listing, help, version and completion import none of the heavy libraries.

A correctness test, not a timing one: each case runs a fresh interpreter (``python -X importtime``) and reads
which modules it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from driftline.cli import SUBCOMMANDS, main

#: What a command imports when it runs, never when it is listed, described or completed.
HEAVY = {"numpy", "scipy", "pandas", "sklearn", "river", "faust"}


def imported_modules(*args: str, env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """Top-level names of the modules ``python -X importtime -m driftline ARGS`` imported, and its stdout."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "driftline", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    names = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "driftline" in names  # the parse found the import log
    return names, run.stdout


def test_help_lists_every_command_without_importing_heavy_modules():
    names, out = imported_modules("--help")
    assert not names & HEAVY, names & HEAVY
    for command in SUBCOMMANDS:
        assert f"  {command} " in out


def test_version_without_importing_heavy_modules():
    names, out = imported_modules("--version")
    assert not names & HEAVY
    assert out.startswith("driftline ") and out.split()[1][0].isdigit()


def test_shell_completion_of_the_commands_without_importing_heavy_modules():
    env = {"_DRIFTLINE_COMPLETE": "bash_complete", "COMP_WORDS": "driftline ", "COMP_CWORD": "1"}
    names, out = imported_modules(env=env)
    assert not names & HEAVY, names & HEAVY
    assert {line.removeprefix("plain,") for line in out.splitlines()} == set(SUBCOMMANDS)


SCRIPT = """
import json, sys
from click.shell_completion import ShellComplete
from driftline.cli import SUBCOMMANDS, main
for name in sorted(SUBCOMMANDS):
    try:
        main([name, "--help"], prog_name="driftline", standalone_mode=False)
    except SystemExit:
        pass
    ShellComplete(main, {}, "driftline", "_DRIFTLINE_COMPLETE").get_completions([name], "")
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_help_and_completion_of_every_command_group_without_importing_heavy_modules():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    names = set(json.loads(run.stdout.splitlines()[-1]))
    assert "driftline" in names and not names & HEAVY, names & HEAVY


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_registered_command_resolves(command: str):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: main " + command)
