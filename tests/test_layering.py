"""The import rules of docs/architecture.md, enforced."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "beamlink"


def imports_of(package: Path) -> list[tuple[Path, str]]:
    found = []
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(path, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.append((path, node.module))
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("sdk", ("beamlink.service", "beamlink.agents", "beamlink.cli")),
        ("protocol", ("beamlink.service", "beamlink.agents", "beamlink.cli", "beamlink.sdk")),
        ("flowlang", ("beamlink.service", "beamlink.agents", "beamlink.cli", "beamlink.sdk")),
        ("service", ("beamlink.cli", "beamlink.sdk", "beamlink.agents")),
        ("agents", ("beamlink.cli", "beamlink.service")),
        ("apps", ("beamlink.service", "beamlink.agents", "beamlink.cli")),
    ],
)
def test_imports_point_one_way(package: str, forbidden: tuple[str, ...]) -> None:
    bad = [(p.relative_to(SRC), m) for p, m in imports_of(SRC / package) if m.startswith(forbidden)]
    assert bad == []


def test_nothing_outside_the_cli_imports_the_cli() -> None:
    bad = [
        (p.relative_to(SRC), m)
        for p, m in imports_of(SRC)
        if m.startswith("beamlink.cli") and "cli" not in p.relative_to(SRC).parts and p.name != "__main__.py"
    ]
    assert bad == []


def test_importing_the_sdk_loads_no_service_code() -> None:
    code = (
        "import sys, beamlink.sdk; "
        "print(sorted(m for m in sys.modules if m.startswith(('beamlink.service', 'sqlalchemy', 'fastapi'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
