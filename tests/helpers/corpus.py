"""The corpus of real public projects (``fixtures/corpus``) and ``uv export`` as the reference.

Each project keeps only its ``uv.lock`` and ``pyproject.toml`` files (root,
members, path dependencies), credited in ``fixtures/corpus/corpus.toml``.
``uv export --frozen`` needs nothing else, so the answers here are uv's own.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from hatch_lambda.lockfile.file import Lock, read_lock
from hatch_lambda.lockfile.workspace import workspace_members
from hatch_lambda.runtime.runtimes import RUNTIMES
from hatch_lambda.runtime.target import Target

from helpers.projects import ROOT
from helpers.uvexport import Selection

CORPUS = ROOT / "fixtures" / "corpus"
PYTHONS = ("3.11", "3.12", "3.13", "3.14")
ARCHES = ("x86_64", "arm64")


@dataclass(frozen=True)
class Project:
    name: str
    repository: str
    commit: str
    lock_path: Path
    covers: tuple[str, ...]
    uv_lock_check: str

    @property
    def directory(self) -> Path:
        return self.lock_path.parent

    @property
    def pyproject(self) -> dict:
        return tomllib.loads((self.directory / "pyproject.toml").read_text(encoding="utf-8"))

    @property
    def is_virtual(self) -> bool:
        return "project" not in self.pyproject

    @property
    def root(self) -> str:
        """The project uv exports without --package ("" at a virtual root)."""
        return "" if self.is_virtual else self.pyproject["project"]["name"]

    def targets(self) -> tuple[list[Target], list[Target]]:
        """(targets its requires-python allows, targets it does not), of PYTHONS x ARCHES.

        A series whose table patch release requires-python excludes, but a later one of which it allows
        (``>=3.13.14``), is outside as the table has it and inside at that later patch release (as a user
        would set ``python = "3.13.14"`` once Lambda runs it).
        """
        spec = SpecifierSet(read_lock(self.lock_path).requires_python or "")
        inside, outside = [], []
        for python in PYTHONS:
            table = RUNTIMES[python].patch
            if spec.contains(table, prereleases=True):
                inside += [Target(python, arch) for arch in ARCHES]
                continue
            outside += [Target(python, arch) for arch in ARCHES]
            micro = int(table.rsplit(".", 1)[1])
            later = next((f"{python}.{m}" for m in range(micro + 1, 100) if spec.contains(f"{python}.{m}")), None)
            if later:
                inside += [Target(later, arch) for arch in ARCHES]
        return inside, outside


@cache
def projects() -> tuple[Project, ...]:
    data = tomllib.loads((CORPUS / "corpus.toml").read_text(encoding="utf-8"))
    return tuple(
        Project(
            name=item["name"],
            repository=item["repository"],
            commit=item["commit"],
            lock_path=CORPUS / item["name"] / item["lock"],
            covers=tuple(item.get("covers", ())),
            uv_lock_check=item.get("uv_lock_check", ""),
        )
        for item in data["project"]
    )


def _conflicting(lock: Lock, root: str) -> list[set[tuple[str, str]]]:
    sets = []
    for conflict in lock.data.get("conflicts", []):
        items = {(kind, canonicalize_name(item[kind])) for item in conflict for kind in ("extra", "group")
                 if kind in item and canonicalize_name(item.get("package", root)) == root}
        sets.append(items)
    return sets


def selections(project: Project, *, max_each: int = 6) -> list[Selection]:
    """The root's own build (unless virtual), its extras and groups one at a time (at most ``max_each``
    of each), the most that uv allows together, and every workspace member as ``--package``."""
    lock = read_lock(project.lock_path)
    out: list[Selection] = []
    members = workspace_members(lock)
    if not project.is_virtual:
        root = canonicalize_name(project.pyproject["project"]["name"])
        entry = lock.packages[root][0]
        extras = sorted(canonicalize_name(e) for e in entry.get("metadata", {}).get("provides-extras", []))
        groups = sorted(canonicalize_name(g) for g in entry.get("dev-dependencies", {}))
        conflicts = _conflicting(lock, root)

        def allowed(items: set[tuple[str, str]]) -> bool:
            return not any(len(items & conflict) > 1 for conflict in conflicts)

        out.append(Selection())
        out += [Selection(extras=(e,)) for e in extras[:max_each]]
        out += [Selection(groups=(g,)) for g in groups[:max_each]]
        chosen: set[tuple[str, str]] = set()
        for item in [("extra", e) for e in extras] + [("group", g) for g in groups]:
            if allowed(chosen | {item}):
                chosen.add(item)
        if len(chosen) > 1:
            everything = Selection(tuple(sorted(n for k, n in chosen if k == "extra")),
                                   tuple(sorted(n for k, n in chosen if k == "group")))
            if everything not in out:
                out.append(everything)
        members = [m for m in members if m != root]
    out += [Selection(package=member) for member in members]
    return out


def cases() -> list[tuple[Project, Selection]]:
    return [(project, selection) for project in projects() for selection in selections(project)]


def case_ids() -> list[str]:
    return [f"{project.name}-{selection.id}" for project, selection in cases()]

