"""Repository-level truths: the code is ruff clean, the README documents every setting and the two quick-start
commands, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from driftline.contract.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def quick_start() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the quick start has a bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_quick_start_has_exactly_two_commands_demo_and_tests():
    commands = quick_start()
    assert len(commands) == 2
    assert commands[0].endswith("driftline demo") and "pip install -e ." in commands[0]
    assert "pytest" in commands[1] and "[test]" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick_start()[1] in ci


def test_the_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`DRIFTLINE_{name.upper()}`" not in readme]
    assert not missing, f"README lacks {missing}"


def test_the_code_is_ruff_clean_and_ruff_formatted():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.fail("ruff is a test dependency and must be installed")
    result = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    formatted = subprocess.run([ruff, "format", "--check", str(ROOT)], capture_output=True, text=True)
    assert formatted.returncode == 0, f"run `ruff format .`:\n{formatted.stdout[-3000:]}"
