"""The docs say what the code does: the options table, the module map, the "what was tried" table, the README."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hatch_lambda.config.options import options_table

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HEADING = "## What was tried and what happens"


def between(text: str, name: str) -> str:
    start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
    assert start in text and end in text, f"no {name} markers"
    return text.split(start, 1)[1].split(end, 1)[0]


def test_the_options_table_is_the_declarations():
    assert between((DOCS / "options.md").read_text(encoding="utf-8"), "options") == options_table()


def test_every_module_is_on_the_map():
    text = between((DOCS / "development.md").read_text(encoding="utf-8"), "modules")
    package = ROOT / "src" / "hatch_lambda"
    for path in sorted(package.rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        name = path.relative_to(package).as_posix()
        assert f"`{name}`" in text, f"{name} is not on the map in docs/development.md"


def table_rows() -> list[str]:
    text = (DOCS / "development.md").read_text(encoding="utf-8")
    assert HEADING in text, f"docs/development.md has no {HEADING!r} section"
    section = text.split(HEADING, 1)[1].split("\n#", 1)[0]
    lines = section.splitlines()
    table = [number for number, line in enumerate(lines) if line.startswith("|")]
    assert table == list(range(table[0], table[-1] + 1)), "the table is split by a line that is not a row"
    return [line for line in lines if line.startswith("| ") and not line.startswith("| case ")]


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
            assert path.is_file(), f"{filename} (named in the docs) does not exist"
            assert function in defined_tests(path), f"{filename}::{function} (named in the docs) does not exist"


def test_every_test_the_errors_page_names_exists():
    for filename in set(re.findall(r"`(test_\w+\.py)`", (DOCS / "errors.md").read_text(encoding="utf-8"))):
        assert (ROOT / "tests" / filename).is_file(), filename


def test_the_readme_is_short_and_starts_with_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) <= 12 * 1024
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in readme.split("---", 1)[0].splitlines() if line.startswith("python -m pip")]
    assert len(commands) == 2
    for command in commands:
        assert command in ci, f"the README's command is not what CI runs: {command}"
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)", readme):
        assert (ROOT / link).is_file(), link
