"""The import rule of docs/ARCHITECTURE.md: every arrow points down a floor, no package imports one of its own
floor, the contract imports nothing of ours, and nothing in the repository cites a file outside it."""

from __future__ import annotations

import ast
import re
import subprocess
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: package -> (folder, floor), as docs/ARCHITECTURE.md draws them.
FLOORS = {
    "contract": ("driftline/contract", 0),
    "models": ("models", 1),
    "monitoring": ("monitoring", 2),
    "offline": ("offline", 3),
    "streams": ("streams", 3),
    "embedded": ("driftline/embedded", 4),
    "bench": ("bench", 5),
    "face": ("driftline", 6),
}


def package_of(module: str) -> str | None:
    """The floor package of a ``driftline`` module name (None for anything else).

    >>> package_of("driftline.streams.app"), package_of("driftline.cli"), package_of("river.drift")
    ('streams', 'face', None)
    """
    parts = module.split(".")
    if parts[0] != "driftline":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in FLOORS and parts[1] != "face" else "face"


def imports() -> dict[str, set[str]]:
    """Floor package -> the ``driftline`` modules its files import (top level or inside functions)."""
    found: dict[str, set[str]] = defaultdict(set)
    for package, (folder, _) in FLOORS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                found[package].update(f"{path.relative_to(ROOT)} -> {name}" for name in names)
    return found


def test_every_import_arrow_points_down_a_floor() -> None:
    wrong = []
    for package, arrows in imports().items():
        for arrow in arrows:
            target = package_of(arrow.split(" -> ")[1])
            if target is None or target == package:
                continue
            if FLOORS[target][1] >= FLOORS[package][1]:
                wrong.append(arrow)
    assert not wrong, "imports that run up or across a floor:\n" + "\n".join(sorted(wrong))


def test_the_contract_imports_nothing_of_ours() -> None:
    ours = [arrow for arrow in imports()["contract"] if package_of(arrow.split(" -> ")[1]) not in (None, "contract")]
    assert not ours, ours


def test_the_old_top_level_packages_are_gone() -> None:
    old = ("streams", "models", "monitoring", "offline", "bench")
    stale = [arrow for arrows in imports().values() for arrow in arrows if arrow.split(" -> ")[1].split(".")[0] in old]
    assert not stale, stale


def test_nothing_cites_a_file_outside_the_repository() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    # The founding document and the developers' scratch places (the shared folder beside the checkout, the
    # coordination folder, other checkouts, the tool library) are not in the repository; a container's own working
    # directory (the retrain job's ``/work/candidate``) is not a citation.
    outside = re.compile(r"DESIGN\.md|\.\./shared/|/work/(?:coord|main|wt-|ci\d|\.library|\.mirror)")
    citing = [
        f"{name}: {match.group()}"
        for name in tracked
        if name.endswith((".py", ".md", ".toml", ".yml", ".yaml", ".sh", ".txt", ".cfg"))
        and name != "tests/test_architecture.py"
        and (match := outside.search((ROOT / name).read_text(errors="replace")))
    ]
    assert not citing, f"these cite a file outside the repository: {citing}"
