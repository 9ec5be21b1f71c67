"""The corpus of real public projects (``fixtures/corpus``) and ``uv export`` as the reference.

Each project keeps only its ``uv.lock`` and ``pyproject.toml`` files (root,
members, path dependencies), credited in ``fixtures/corpus/corpus.toml``.
``uv export --frozen`` needs nothing else, so the answers here are uv's own.
"""

from __future__ import annotations

import subprocess
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from hatch_lambda.git_source import parse_git_source
from hatch_lambda.lock import Lock, read_lock, source_kind, workspace_members
from hatch_lambda.markers import encode_extra, encode_group, evaluate
from hatch_lambda.runtimes import RUNTIMES
from hatch_lambda.target import Target

ROOT = Path(__file__).resolve().parent.parent
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


@dataclass(frozen=True)
class Selection:
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    package: str | None = None

    @property
    def id(self) -> str:
        parts = [f"extra={e}" for e in self.extras] + [f"group={g}" for g in self.groups]
        parts += [f"package={self.package}"] if self.package else []
        return ",".join(parts) or "base"


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


def uv_command() -> list[str]:
    import shutil
    import sys

    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


@cache
def uv_export(directory: Path, selection: Selection) -> tuple[str, ...]:
    """``uv export`` lines (target-independent; each line carries the marker it is needed under)."""
    command = [*uv_command(), "export", "--frozen", "--no-default-groups", "--no-emit-project", "--no-editable",
               "--no-hashes", "--no-header", "--no-annotate"]
    for extra in selection.extras:
        command += ["--extra", extra]
    for group in selection.groups:
        command += ["--group", group]
    if selection.package:
        command += ["--package", selection.package]
    run = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "UV_NO_CONFIG": "1"})
    assert run.returncode == 0, f"uv export in {directory} ({selection.id}) failed:\n{run.stderr}"
    return tuple(line for line in run.stdout.splitlines() if line.strip() and not line.startswith("#"))


def identity(dist, lock_dir: Path) -> str:
    """``name==version`` and, when it is not from an index, where it comes from, written as uv export does."""
    if dist.source_kind == "url":
        return f"{dist.pin} @ {dist.source}" + (f"#subdirectory={dist.subdirectory}" if dist.subdirectory else "")
    if dist.source_kind == "git":
        source = parse_git_source(dist.source)
        subdirectory = f"#subdirectory={source.subdirectory}" if source.subdirectory else ""
        return f"{dist.pin} @ git+{source.url}@{source.commit}{subdirectory}"
    if dist.source_kind in ("path", "directory", "editable"):
        return f"{dist.pin} @ {(lock_dir / dist.source).resolve()}"
    return dist.pin


def exported_pins(project: Project, selection: Selection, target: Target, lock: Lock) -> set[str]:
    """What uv export selects for ``target``, as :func:`identity` strings."""
    root = canonicalize_name(selection.package or project.pyproject["project"]["name"])
    active = {encode_extra(root, e) for e in selection.extras} | {encode_group(root, g) for g in selection.groups}
    by_location, by_name = {}, {}
    for entries in lock.packages.values():
        for entry in entries:
            kind, where = source_kind(entry)
            by_name.setdefault((canonicalize_name(entry["name"]), kind), []).append(entry)
            if kind in ("editable", "directory", "path", "virtual"):
                by_location[(project.directory / where).resolve()] = entry
    pins = set()
    for line in uv_export(project.directory, selection):
        requirement, _, marker = line.partition(" ; ")
        if not evaluate(marker.strip() or None, target.marker_environment, active):
            continue
        requirement = requirement.strip().removeprefix("-e ").strip()
        if requirement.startswith((".", "/", "file:")) and " @ " not in requirement:
            location = (project.directory / requirement.removeprefix("file://")).resolve()
            entry = by_location[location]
            pin = canonicalize_name(entry["name"]) + (f"=={entry['version']}" if "version" in entry else "")
            pins.add(f"{pin} @ {location}")
            continue
        parsed = Requirement(requirement)
        name = canonicalize_name(parsed.name)
        if parsed.url:
            kind = "git" if parsed.url.startswith("git+") else "url"
            candidates = by_name.get((name, kind), [])
            versions = {entry.get("version") for entry in candidates}
            assert len(versions) == 1, f"{line}: {len(candidates)} {kind} entries of {name} in the lock"
            version = versions.pop()
            pins.add(f"{name}{'==' + version if version else ''} @ {parsed.url}")
            continue
        (spec,) = parsed.specifier
        assert spec.operator == "==", line
        pins.add(f"{name}=={spec.version}")
    return pins


def cases() -> list[tuple[Project, Selection]]:
    return [(project, selection) for project in projects() for selection in selections(project)]


def case_ids() -> list[str]:
    return [f"{project.name}-{selection.id}" for project, selection in cases()]

