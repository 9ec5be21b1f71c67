"""resolve() against ``uv export`` for every fixture, target and extras/groups selection.

uv export writes one line per distribution with the marker under which it is
needed; evaluating those markers for the Lambda target gives the set uv would
install there, which must be exactly what resolve() reads from the lock.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from hatch_lambda.lockfile.file import find_lock, read_lock
from hatch_lambda.lockfile.resolve import resolve
from hatch_lambda.runtime.target import Target

from helpers.projects import FIXTURES
from helpers.uvexport import Selection, exported_pins, identity

PYTHONS = ("3.11", "3.12", "3.13")
ARCHES = ("x86_64", "arm64")
FIXTURE_NAMES = sorted(p.name for p in FIXTURES.iterdir() if (p / "uv.lock").is_file())


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


def exported(project: Path, selection: Selection, target: Target) -> set[str]:
    """What uv export selects for ``target`` in a fixture project."""
    return exported_pins(project, _pyproject(project.name)["project"]["name"], selection, target,
                         read_lock(find_lock(project)))


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
    theirs = exported(project, selection, target)
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
        (python, arch): exported(FIXTURES / "markers-app", Selection(), Target(python, arch))
        for python in PYTHONS
        for arch in ARCHES
    }
    assert len(set(map(frozenset, per_target.values()))) == 6
