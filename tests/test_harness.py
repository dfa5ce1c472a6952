"""The shared test harness's own checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_busy_cores_spins_one_process_per_core_the_tests_may_use_not_per_core_of_the_machine() -> None:
    one_core = min(os.sched_getaffinity(0))
    script = "from tests.harness import busy_cores\nwith busy_cores() as spinners:\n    print(len(spinners))"
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        preexec_fn=lambda: os.sched_setaffinity(0, {one_core}),  # as `taskset -c <cpu>` or a container's cpuset
    )
    assert out.stdout.split() == ["1"]
