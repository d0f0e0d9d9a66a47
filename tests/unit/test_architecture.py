"""The dependency rule, executable: CI fails on the first import that crosses a line."""

import ast
import sys
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]


def imported_top_levels(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_import_linter_contracts_are_kept():
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_the_domain_imports_only_the_standard_library_and_msgspec():
    allowed = set(sys.stdlib_module_names) | {"msgspec", "domain", "__future__"}
    offenders = {m: files for m, files in imported_top_levels("domain").items() if m not in allowed}
    assert offenders == {}


@pytest.mark.parametrize("package", ["domain", "application"])
def test_the_core_imports_no_framework_driver_or_outer_layer(package):
    forbidden = {
        "sqlalchemy",
        "asyncpg",
        "aiokafka",
        "stripe",
        "litestar",
        "dependency_injector",
        "httpx",
        "adapters",
        "entrypoints",
    }
    assert set(imported_top_levels(package)) & forbidden == set()
