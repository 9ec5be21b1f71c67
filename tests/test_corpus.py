"""The lock reader on real public projects it was not written against (``fixtures/corpus``).

For every project, every target its ``requires-python`` allows from
{3.11, 3.12, 3.13, 3.14} x {x86_64, arm64}, and every selection it has (its
extras and groups, and each workspace member as ``--package``), the pinned set
must be exactly what ``uv export`` selects, with its markers judged at the
patch release the runtime runs. No lock uv calls fresh may be called stale;
targets outside ``requires-python`` and virtual workspace roots are refused
with a message that says so.
"""

from __future__ import annotations

from functools import cache

import pytest

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import Lock, read_lock
from hatch_lambda.lockfile.freshness import check_fresh
from hatch_lambda.lockfile.resolve import resolve
from hatch_lambda.lockfile.wheels import NoFileError
from hatch_lambda.runtime.target import Target

from helpers.corpus import CORPUS, case_ids, cases, projects
from helpers.uvexport import exported_pins, identity


@cache
def lock_for(path, target: Target | None = None) -> Lock:
    return read_lock(path, target)


@pytest.mark.parametrize("project, selection", cases(), ids=case_ids())
def test_corpus_resolves_like_uv_export(project, selection):
    inside, _ = project.targets()
    assert inside, f"{project.name}: no target in {{3.11..3.14}} x {{x86_64, arm64}} to compare on"
    differences, refused = [], []
    for target in inside:
        theirs = exported_pins(project.directory, project.root, selection, target, lock_for(project.lock_path))
        try:
            resolution = resolve(project.directory, target, extras=selection.extras, groups=selection.groups,
                                 package=selection.package, check_fresh=False,
                                 lock=lock_for(project.lock_path, target))
        except NoFileError as exc:
            # Refusing is right only where uv would install something with no file for Lambda; the set
            # itself must still be uv's.
            assert set(exc.names) <= {pin.split("==")[0].split(" @ ")[0] for pin in theirs}, exc.problem
            refused.append(target)
            resolution = resolve(project.directory, target, extras=selection.extras, groups=selection.groups,
                                 package=selection.package, check_fresh=False,
                                 lock=lock_for(project.lock_path, target), files=False)
        ours = {identity(dist, project.directory) for dist in resolution.distributions}
        if ours != theirs:
            differences.append(f"{target.describe()}: only ours {sorted(ours - theirs)}; "
                               f"only uv export {sorted(theirs - ours)}")
    assert not differences, "\n".join(differences)


def test_the_corpus_covers_what_real_projects_do():
    everything = projects()
    assert len(everything) >= 20
    covered = {tag for project in everything for tag in project.covers}
    for wanted in ("lambda", "workspace", "virtual-root", "dynamic", "path-dependency-sources", "conflicts",
                   "pytorch-index", "environments", "git-source", "large"):
        assert wanted in covered, wanted
    assert sum(p.lock_path.stat().st_size for p in everything) < 10 * 2**20
    total = sum(f.stat().st_size for f in CORPUS.rglob("*") if f.is_file())
    assert total < 10 * 2**20, f"the corpus holds {total} bytes"
    workspaces = [p for p in everything if p.is_virtual and len(read_lock(p.lock_path).members) >= 6]
    assert len(workspaces) >= 2
    assert len(cases()) > 150
    # linux_<arch> wheels (a PyTorch index) are in there, and are chosen where nothing better exists.
    text = "".join(p.lock_path.read_text() for p in everything)
    assert "-linux_x86_64.whl" in text and "-linux_aarch64.whl" in text


@pytest.mark.parametrize("project", projects(), ids=lambda p: p.name)
def test_corpus_locks_are_fresh(project, tmp_path):
    """uv calls these locks fresh (or could not check them here); so must the freshness check."""
    assert not project.uv_lock_check.startswith("stale"), project.uv_lock_check
    notes = check_fresh(lock_for(project.lock_path), None if project.is_virtual else project.directory,
                        cache=tmp_path / "cache")
    # Dynamic dependencies cannot be read from a pyproject.toml alone: the lock is trusted, and that is said.
    for note in notes:
        assert " dynamic in " in note and "; trusted uv.lock's (only pyproject.toml is in " in note, note
    if project.name == "pydantic-ai":  # its root's dependencies and optional-dependencies are dynamic
        assert any(note.startswith("pydantic-ai: dependencies and optional-dependencies dynamic") for note in notes)


@pytest.mark.parametrize("project", [p for p in projects() if p.targets()[1]], ids=lambda p: p.name)
def test_targets_outside_requires_python_are_refused(project):
    _, outside = project.targets()
    requires = read_lock(project.lock_path).requires_python
    for target in outside:
        with pytest.raises(LambdaBuildError) as info:
            package = read_lock(project.lock_path).members[0] if project.is_virtual else None
            resolve(project.directory, target, package=package, check_fresh=False)
        assert (f"python {target.python} (Lambda runs {target.full_version}) is outside the project's "
                f"requires-python {requires!r}") in info.value.problem


@pytest.mark.parametrize("project", [p for p in projects() if p.is_virtual], ids=lambda p: p.name)
def test_virtual_roots_are_refused_with_their_members(project):
    inside, _ = project.targets()
    with pytest.raises(LambdaBuildError) as info:
        resolve(project.directory, inside[0], check_fresh=False)
    assert "virtual workspace root" in info.value.problem
    members = sorted(read_lock(project.lock_path).members)
    assert f"members: {', '.join(members)}" in info.value.fix


def test_every_corpus_project_is_credited_in_the_fixtures_readme():
    readme = (CORPUS.parent / "README.md").read_text()
    for project in projects():
        assert f"| `{project.name}` | [{project.repository}](https://github.com/{project.repository})" in readme
        assert f"`{project.commit}`" in readme
    kept = {path.name for path in CORPUS.rglob("*") if path.is_file()}
    assert kept == {"uv.lock", "pyproject.toml", "corpus.toml"}, kept  # nothing but what the tests read


@pytest.mark.parametrize("project", [p for p in projects() if p.is_virtual], ids=lambda p: p.name)
def test_hatch_lambda_build_at_a_virtual_root_lists_the_members_to_build(project, tmp_path):
    from helpers.projects import run_cli

    result = run_cli("build", str(project.directory), "-d", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "it is a virtual workspace root, which has no Lambda targets of its own" in result.stderr
    for member in read_lock(project.lock_path).members:
        assert f"({member})" in result.stderr
    assert not (tmp_path / "out").exists()
