"""The flow runs one way: collection builds the snapshot, checks read it. Collection never reaches into checks."""

import ast
import subprocess
import sys
from pathlib import Path

import audit.collect


def _imported_modules(path: Path) -> set[str]:
    """Every module the file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_collect_names_no_checks_module():
    imported = _imported_modules(Path(audit.collect.__file__))
    assert "audit.models" in imported
    assert not {name for name in imported if name == "audit.checks" or name.startswith("audit.checks.")}


def test_importing_collect_loads_no_check():
    code = "import sys, audit.collect; print(sorted(m for m in sys.modules if m.startswith('audit.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'audit.collect'" in loaded
    assert "audit.checks" not in loaded
