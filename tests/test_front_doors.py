"""Every package has a front door: a docstring naming its entry points and an ``__all__`` whose every name
resolves, while importing the packages themselves stays cheap (no numpy, scipy, pandas, scikit-learn, River)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
HEAVY = {"numpy", "scipy", "pandas", "sklearn", "river", "faust"}


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_names_its_entry_points_and_every_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__doc__ and len(module.__doc__.strip().splitlines()) >= 3, f"{package} has no front door"
    assert module.__all__, f"{package} has no __all__"
    for name in module.__all__:
        assert getattr(module, name) is not None
        if package != "driftline":
            assert f"{name}`" in module.__doc__, f"{package}'s docstring does not name {name}"


def test_importing_every_package_imports_no_heavy_module() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for package in {PACKAGES!r}:\n"
        "    importlib.import_module(package)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    imported = set(json.loads(run.stdout))
    assert "driftline" in imported and not imported & HEAVY, imported & HEAVY
