"""The layers: `dsllm` (the CLI) sits on top of `flows`, which sits on top of `components`; components never
import Prefect. Read from the source (every import statement, top-level or not), so nothing heavy is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.unit


def imported(package: str) -> dict[str, set[str]]:
    """{module file: the top-level package names it imports} for every module of `package`."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(("package", "forbidden"), [("flows", {"dsllm"}), ("components", {"dsllm", "flows", "prefect"})])
def test_lower_layers_never_import_upper_ones(package, forbidden):
    offenders = {module: sorted(names & forbidden) for module, names in imported(package).items() if names & forbidden}
    assert not offenders, f"{package} must not import {sorted(forbidden)}: {offenders}"
