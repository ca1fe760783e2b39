"""The module graph: no cycles, every import of the package at the top of its module, and
docs/architecture.md's generated graph up to date (`scripts/module_graph.py`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "module_graph.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_no_cycles_and_imports_at_the_top():
    done = _run("--check")
    assert done.returncode == 0, done.stdout


def test_architecture_doc_shows_the_current_graph():
    block = _run().stdout.strip()
    assert block and block in (REPO / "docs" / "architecture.md").read_text(encoding="utf-8"), (
        "docs/architecture.md is stale: python scripts/module_graph.py --write docs/architecture.md"
    )
