"""How fast the command line starts: ``driftline --help``, ``--version`` and TAB completion, each in a fresh
interpreter, beside importing the modules the commands run (what listing the commands cost when it imported
them). CPU seconds of the child processes (user + system, less sensitive to a busy machine than wall time) and
wall seconds, median of ``rounds``, interleaved; and which heavy libraries each start imported.

>>> figures = run(rounds=1)
>>> figures["help"]["heavy_imported"], figures["completion"]["heavy_imported"]
([], [])
>>> figures["commands_imported"]["heavy_imported"]
['faust', 'numpy', 'pandas', 'river', 'scipy', 'sklearn']
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from typing import Any

from driftline.embedded.stack import CHILD_PYTHON

HEAVY = ("faust", "numpy", "pandas", "river", "scipy", "sklearn")

#: What the commands import when they run (the worker, training, the registry, the monitors).
COMMAND_MODULES = (
    "driftline.streams.app",
    "driftline.offline.train",
    "driftline.models.registry",
    "driftline.monitoring.monitor",
)

#: Printed last by every start: the heavy libraries it loaded.
MARK = "heavy-imported:"
PROBE = f"import sys\nprint({MARK!r} + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"


def _cli(args: list[str]) -> str:
    """Code running ``driftline ARGS`` in the interpreter (as ``python -m driftline`` does), then the probe."""
    return (
        f"from driftline.cli import main\ntry:\n    main({args!r}, prog_name='driftline')\n"
        f"except SystemExit:\n    pass\n{PROBE}"
    )


STARTS: dict[str, tuple[str, dict[str, str]]] = {
    "help": (_cli(["--help"]), {}),
    "version": (_cli(["--version"]), {}),
    "completion": (_cli([]), {"_DRIFTLINE_COMPLETE": "bash_complete", "COMP_WORDS": "driftline ", "COMP_CWORD": "1"}),
    "commands_imported": (f"import {', '.join(COMMAND_MODULES)}\n{PROBE}", {}),
}


def _start(code: str, env: dict[str, str]) -> tuple[float, float, list[str]]:
    """(CPU seconds, wall seconds, heavy libraries loaded) of one fresh interpreter running ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        [*CHILD_PYTHON, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, check=True
    ).stdout
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    heavy = next(line for line in reversed(out.splitlines()) if line.startswith(MARK)).removeprefix(MARK)
    return cpu, wall, [name for name in heavy.split(",") if name]


def run(rounds: int = 5) -> dict[str, Any]:
    """Median CPU and wall seconds of each start over ``rounds`` interleaved rounds, and what each imported."""
    samples: dict[str, list[tuple[float, float, list[str]]]] = {name: [] for name in STARTS}
    for _ in range(rounds):
        for name, (code, env) in STARTS.items():
            samples[name].append(_start(code, env))
    figures: dict[str, Any] = {}
    for name, runs in samples.items():
        figures[name] = {
            "cpu_s": round(statistics.median(c for c, _, _ in runs), 3),
            "wall_s": round(statistics.median(w for _, w, _ in runs), 3),
            "heavy_imported": runs[-1][2],
        }
    figures["help_cpu_vs_commands_imported"] = round(
        figures["commands_imported"]["cpu_s"] / max(figures["help"]["cpu_s"], 1e-3), 1
    )
    figures["rounds"] = rounds
    return figures
