"""resolve() against ``uv export`` for every fixture, target and extras/groups selection.

uv export writes one line per distribution with the marker under which it is
needed; evaluating those markers for the Lambda target gives the set uv would
install there, which must be exactly what resolve() reads from the lock.
"""

from __future__ import annotations

import itertools
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import FIXTURES, uv_command
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from hatch_lambda.lock import find_lock, read_lock, resolve, source_kind
from hatch_lambda.markers import encode_extra, encode_group, evaluate
from hatch_lambda.target import Target

PYTHONS = ("3.11", "3.12", "3.13")
ARCHES = ("x86_64", "arm64")
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "uv.lock").is_file())


@dataclass(frozen=True)
class Selection:
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    package: str | None = None
    prune: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        parts = [f"extra={e}" for e in self.extras] + [f"group={g}" for g in self.groups]
        parts += [f"package={self.package}"] if self.package else []
        parts += [f"prune={p}" for p in self.prune]
        return ",".join(parts) or "base"


def _pyproject(name: str) -> dict:
    return tomllib.loads((FIXTURES / name / "pyproject.toml").read_text())


def _conflicting(data: dict) -> list[set[tuple[str, str]]]:
    sets = []
    for conflict in data.get("tool", {}).get("uv", {}).get("conflicts", []):
        sets.append({("extra", c["extra"]) if "extra" in c else ("group", c["group"]) for c in conflict})
    return sets


def selections(name: str) -> list[Selection]:
    """No extras; each extra; each group; every pair and the largest set that uv allows together."""
    data = _pyproject(name)
    extras = sorted(data.get("project", {}).get("optional-dependencies", {}))
    groups = sorted(data.get("dependency-groups", {}))
    conflicts = _conflicting(data)

    def allowed(items: set[tuple[str, str]]) -> bool:
        return not any(len(items & conflict) > 1 for conflict in conflicts)

    out = [Selection()]
    out += [Selection(extras=(e,)) for e in extras]
    out += [Selection(groups=(g,)) for g in groups]
    for a, b in itertools.combinations(extras, 2):
        if allowed({("extra", a), ("extra", b)}):
            out.append(Selection(extras=(a, b)))
    for a, g in itertools.product(extras, groups):
        if allowed({("extra", a), ("group", g)}):
            out.append(Selection(extras=(a,), groups=(g,)))
    # Greedily the most extras and groups that do not conflict.
    chosen: set[tuple[str, str]] = set()
    for item in [("extra", e) for e in extras] + [("group", g) for g in groups]:
        if allowed(chosen | {item}):
            chosen.add(item)
    if len(chosen) > 1:
        everything = Selection(
            extras=tuple(sorted(n for k, n in chosen if k == "extra")),
            groups=tuple(sorted(n for k, n in chosen if k == "group")),
        )
        if everything not in out:
            out.append(everything)
    # Workspace members as the root, and pruning (resolve's exclude) on a few real cases.
    lock = read_lock(FIXTURES / name / "uv.lock")
    root = canonicalize_name(data["project"]["name"])
    for member in lock.members:
        if member != root:
            out.append(Selection(package=member))
    if name == "spectra-demo":
        out += [Selection(prune=("boto3",)), Selection(prune=("botocore", "pyarrow"))]
    if name == "extras-app":
        out += [Selection(extras=("http",), prune=("requests",)), Selection(extras=("http",), prune=("urllib3",))]
    if name == "workspace-app":
        out += [Selection(prune=("wsmember",))]
    if name == "sources-app":
        out += [Selection(prune=("shouty",)), Selection(prune=("six",))]
    return out


def cases():
    for name in FIXTURE_NAMES:
        requires = SpecifierSet(_pyproject(name)["project"].get("requires-python", ""))
        for python in PYTHONS:
            if not requires.contains(f"{python}.0") and not requires.contains(f"{python}.99"):
                continue
            for arch in ARCHES:
                for selection in selections(name):
                    yield pytest.param(name, python, arch, selection, id=f"{name}-{python}-{arch}-{selection.id}")


_EXPORTS: dict[tuple[str, Selection], list[str]] = {}


def uv_export(project: Path, selection: Selection) -> list[str]:
    """The requirement lines of ``uv export`` (cached: they do not depend on the target)."""
    key = (str(project), selection)
    if key not in _EXPORTS:
        command = [
            *uv_command(), "export", "--frozen", "--no-emit-project", "--no-editable", "--no-hashes",
            "--no-header", "--no-annotate",
            # resolve(groups=...) is the project's dependencies plus those groups,
            # and nothing by default: uv's default groups ("dev") are turned off
            # and each asked-for group added back.
            "--no-default-groups",
        ]  # fmt: skip
        for extra in selection.extras:
            command += ["--extra", extra]
        for group in selection.groups:
            command += ["--group", group]
        if selection.package:
            command += ["--package", selection.package]
        for name in selection.prune:
            command += ["--prune", name]
        run = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        _EXPORTS[key] = [line for line in run.stdout.splitlines() if line.strip() and not line.startswith("#")]
    return _EXPORTS[key]


def identity(dist, lock_dir: Path) -> str:
    """``name==version``, and where it comes from when that is not the index."""
    if dist.source_kind == "url":
        return f"{dist.pin} @ {dist.source}"
    if dist.source_kind in ("path", "directory", "editable"):
        return f"{dist.pin} @ {(lock_dir / dist.source).resolve()}"
    return dist.pin


def exported_pins(project: Path, selection: Selection, target: Target) -> set[str]:
    """What uv export selects for ``target``, as :func:`identity` strings."""
    lock = read_lock(find_lock(project))
    root = canonicalize_name(selection.package or _pyproject(project.name)["project"]["name"])
    active = {encode_extra(root, e) for e in selection.extras} | {encode_group(root, g) for g in selection.groups}
    by_location = {}
    for entries in lock.packages.values():
        for entry in entries:
            kind, where = source_kind(entry)
            if kind in ("editable", "directory", "path", "virtual"):
                by_location[(lock.path.parent / where).resolve()] = entry
            elif kind == "url":
                by_location[where] = entry
    pins = set()
    for line in uv_export(project, selection):
        requirement, _, marker = line.partition(" ; ")
        if not evaluate(marker.strip() or None, target.marker_environment, active):
            continue
        requirement = requirement.strip().removeprefix("-e ").strip()
        if requirement.startswith((".", "/", "file:")):
            # A workspace member, a local directory or a local file: named through the lock.
            location = (project / requirement.removeprefix("file://")).resolve()
            entry = by_location[location]
            pin = canonicalize_name(entry["name"]) + (f"=={entry['version']}" if "version" in entry else "")
            pins.add(f"{pin} @ {location}")  # a dynamic version is locked as none
            continue
        parsed = Requirement(requirement)
        if parsed.url:
            entry = by_location[parsed.url]
            assert canonicalize_name(entry["name"]) == canonicalize_name(parsed.name)
            pins.add(f"{canonicalize_name(parsed.name)}=={entry['version']} @ {parsed.url}")
            continue
        (spec,) = parsed.specifier
        assert spec.operator == "==", line
        pins.add(f"{canonicalize_name(parsed.name)}=={spec.version}")
    return pins


@pytest.mark.parametrize("name, python, arch, selection", list(cases()))
def test_resolve_matches_uv_export(name, python, arch, selection):
    project = FIXTURES / name
    target = Target(python, arch)
    resolution = resolve(
        project,
        target,
        extras=selection.extras,
        groups=selection.groups,
        package=selection.package,
        exclude=selection.prune,
    )
    ours = {identity(dist, resolution.lock_path.parent) for dist in resolution.distributions}
    theirs = exported_pins(project, selection, target)
    assert ours == theirs, f"only resolve(): {sorted(ours - theirs)}; only uv export: {sorted(theirs - ours)}"


def test_the_matrix_is_not_trivial():
    """The cases above really cover forks, markers, conflicts and members."""
    ids = [case.id for case in cases()]
    assert len(ids) > 200
    assert any("extras-app" in i and "extra=legacy" in i for i in ids)
    assert not any("extra=legacy,extra=modern" in i for i in ids)  # uv refuses the conflicting pair
    assert not any("extra=http" in i and "group=oldreq" in i for i in ids)
    assert any("extra=legacy" in i and "group=oldreq" in i for i in ids)
    assert not any(i.startswith("spectra-demo-3.11") for i in ids)
    assert any(i.startswith("workspace-app") and "package=wsmember" in i for i in ids)
    assert any(i.startswith("sources-app") and "group=alt" in i for i in ids)
    # Markers really vary the answer across targets.
    per_target = {
        (python, arch): exported_pins(FIXTURES / "markers-app", Selection(), Target(python, arch))
        for python in PYTHONS
        for arch in ARCHES
    }
    assert len(set(map(frozenset, per_target.values()))) == 6
