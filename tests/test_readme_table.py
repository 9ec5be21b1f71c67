"""README's "What was tried and what happens": every row names tests that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = "## What was tried and what happens"


def table_rows() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert HEADING in text, f"README.md has no {HEADING!r} section"
    section = text.split(HEADING, 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| case ")]
    return rows


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_row_names_existing_tests():
    rows = table_rows()
    assert len(rows) >= 20
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 3 and all(cells), f"row should have case | what happens | test: {row}"
        named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", cells[2])
        assert named, f"row names no test: {row}"
        for filename, function in named:
            path = ROOT / "tests" / filename
            assert path.is_file(), f"{filename} (named in README) does not exist"
            assert function in defined_tests(path), f"{filename}::{function} (named in README) does not exist"
