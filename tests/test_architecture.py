"""The package's shape: stages as subpackages, imports flowing one way, no cycle, small modules, one zip writer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers.projects import ROOT

PACKAGE = ROOT / "src" / "hatch_lambda"
#: The stages, in the order data flows through a build; a module imports only from
#: its own stage, the shared modules, and earlier stages.
STAGES = ("runtime", "config", "cache", "lockfile", "fetch", "packs", "assemble", "checks", "pipeline", "plugin", "cli")
SHARED = ("", "errors", "context", "hashing", "jsondata", "nesting", "scratch")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every hatch_lambda module ``path`` imports, wherever the import is (in a function, under TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found |= {name for name in names if name in MODULES}
    return found - {module_name(path)}


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_sees_imports():
    """The checks below would pass on an empty graph; this one would not."""
    assert "hatch_lambda.packs.pack" in GRAPH["hatch_lambda.packs.build"]
    assert "hatch_lambda.plugin.builders" in GRAPH["hatch_lambda.cli.build"]  # imported inside a function
    assert set(STAGES) | set(SHARED) >= {stage(m) for m in MODULES} - {"__main__"}


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for dependency in sorted(GRAPH[module]):
            if state.get(dependency) == 1:
                cycle = [*trail[trail.index(dependency):], dependency] if dependency in trail else [module, dependency]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dependency not in state:
                visit(dependency, [*trail, dependency])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_imports_flow_from_earlier_stages():
    order = {name: index for index, name in enumerate(STAGES)}
    backwards = []
    for module, dependencies in sorted(GRAPH.items()):
        mine = stage(module)
        for dependency in sorted(dependencies):
            theirs = stage(dependency)
            if theirs in SHARED or mine == theirs or mine == "__main__":
                continue
            if mine in SHARED or order[theirs] > order[mine]:
                backwards.append(f"{module} imports {dependency}")
    assert not backwards, "imports against the flow of the stages:\n" + "\n".join(backwards)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(PACKAGE)} has {lines} lines; split it by job"


def test_one_function_assembles_every_zip():
    """Zips are written by assemble.zips.assemble only (archive.py holds the writers it calls)."""
    writers = {"write_zip", "write_compressed"}
    callers = set()
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in writers:
                    callers.add(f"{module}.{function.name}")
    assert callers == {"hatch_lambda.assemble.zips.assemble", "hatch_lambda.assemble.archive.write_zip"}
