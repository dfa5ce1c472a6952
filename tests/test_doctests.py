"""Every docstring example in the package runs and prints what it says (the examples are documentation)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def package_modules() -> list[str]:
    """Every module of every package the wheel installs (the list in pyproject.toml), ``__main__`` excepted."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = []
    for package in packages:
        found.append(package)
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
            if not info.ispkg and info.name != "__main__":
                found.append(f"{package}.{info.name}")
    return found


@pytest.mark.parametrize("module_name", package_modules())
def test_docstring_examples_run(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {module_name}"
