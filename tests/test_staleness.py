"""Is uv.lock still the resolution of pyproject.toml? Edits to copies of the fixtures."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import find_lock, read_lock
from hatch_lambda.lockfile.freshness import check_fresh
from hatch_lambda.lockfile.resolve import resolve
from hatch_lambda.runtime.target import Target

from helpers.projects import FIXTURES, copy_fixture, uv_command

T311 = Target("3.11", "x86_64")
T312 = Target("3.12", "x86_64")
ALL_FIXTURES = sorted(p.name for p in FIXTURES.iterdir() if (p / "uv.lock").is_file())


@dataclass(frozen=True)
class Edit:
    id: str
    fixture: str
    replacements: tuple[tuple[str, str], ...]
    stale: bool
    detail: str = ""  # expected in the message when stale
    file: str = "pyproject.toml"

    def apply(self, tmp_path: Path) -> Path:
        project = copy_fixture(self.fixture, tmp_path)
        path = project / self.file
        text = path.read_text()
        for old, new in self.replacements:
            assert old in text, f"{old!r} not in {self.fixture}/{self.file}"
            text = text.replace(old, new, 1)
        path.write_text(text)
        return project


EDITS = [
    # -- the lock no longer matches ------------------------------------------------
    Edit("add-dependency", "forked-app", (('"six>=1.16",', '"six>=1.16",\n  "attrs>=23.2",'),), True, "attrs"),
    Edit("change-specifier", "forked-app", (('"six>=1.16"', '"six>=1.17"'),), True, "six"),
    Edit("remove-dependency", "forked-app", (('  "pyproject-metadata>=0.9",\n', ""),), True, "pyproject-metadata"),
    Edit(
        "move-fork-boundary",
        "forked-app",
        (("python_version < '3.12'", "python_version < '3.13'"), ("python_version >= '3.12'", "python_version >= '3.13'")),
        True,
        "packaging",
    ),
    Edit(
        "platform-marker-that-matters",
        "markers-app",
        (("\"six>=1.16; sys_platform == 'linux'\"", "\"six>=1.16; sys_platform == 'darwin'\""),),
        True,
        "six",
    ),
    Edit("add-extra", "extras-app", (('yaml = ["pyyaml>=6.0.1"]', 'yaml = ["pyyaml>=6.0.1"]\ncli = ["six>=1.16"]'),), True, "six"),
    Edit("add-empty-extra", "extras-app", (('yaml = ["pyyaml>=6.0.1"]', 'yaml = ["pyyaml>=6.0.1"]\ndocs = []'),), True, "docs"),
    Edit("grow-extra", "extras-app", (('yaml = ["pyyaml>=6.0.1"]', 'yaml = ["pyyaml>=6.0.1", "six>=1.16"]'),), True, "six"),
    Edit("drop-extra-of-dependency", "extras-app", (('"requests[socks]>=2.31"', '"requests>=2.31"'),), True, "requests"),
    Edit("add-group", "extras-app", (('lint = ["pyflakes>=3.2"]', 'lint = ["pyflakes>=3.2"]\ndocs = ["six>=1.16"]'),), True, "docs"),
    Edit("grow-group", "extras-app", (('lint = ["pyflakes>=3.2"]', 'lint = ["pyflakes>=3.2", "six>=1.16"]'),), True, "lint"),
    Edit(
        "drop-include-group",
        "extras-app",
        (('dev = ["iniconfig>=2.0", { include-group = "lint" }]', 'dev = ["iniconfig>=2.0"]'),),
        True,
        "dev",
    ),
    Edit(
        "member-adds-dependency",
        "workspace-app",
        (('"python-dateutil>=2.9",', '"python-dateutil>=2.9",\n  "six>=1.16",'),),
        True,
        "wsmember",
        file="packages/wsmember/pyproject.toml",
    ),
    Edit("root-adds-dependency-in-workspace", "workspace-app", (('"idna>=3.7",', '"idna>=3.7",\n  "six>=1.16",'),), True, "six"),
    Edit(
        "url-source-removed",
        "sources-app",
        (('idna = { url = "', '# idna = { url = "'),),
        True,
        "idna",
    ),
    Edit(
        "url-source-marker-changed",
        "sources-app",
        (("marker = \"platform_machine == 'aarch64'\"", "marker = \"platform_machine == 'x86_64'\""),),
        True,
        "idna",
    ),
    Edit(
        "group-source-moved",
        "sources-app",
        (('-py3-none-any.whl", group = "alt" }', '-py3-none-any.whl", group = "dev" }'),),
        True,
        "iniconfig",
    ),
    Edit(
        "local-directory-dependency-changed",
        "sources-app",
        (('dependencies = ["six>=1.16"]', 'dependencies = ["six>=1.16", "idna>=3.7"]'),),
        True,
        "idna",
        file="libs/shouty/pyproject.toml",
    ),
    Edit("version-changed", "forked-app", (('version = "0.1.0"', 'version = "0.2.0"'),), True, "[project] version"),
    Edit(
        "path-dependency-own-source-removed",
        "dynamic-app",
        (("attrs = { url", "# attrs = { url"),),
        True,
        "attrs",
        file="vendor/sdk/pyproject.toml",
    ),
    Edit(
        "path-dependency-gains-a-dependency",
        "dynamic-app",
        (('dependencies = ["six>=1.16", "attrs"]', 'dependencies = ["six>=1.16", "attrs", "idna"]'),),
        True,
        "idna",
        file="vendor/sdk/pyproject.toml",
    ),
    # -- the same requirements, written differently --------------------------------
    Edit("unchanged", "forked-app", (), False),
    Edit(
        "marker-restyled",
        "forked-app",
        (
            ("python_version < '3.12'", 'python_version<\\"3.12\\"'),
            ("python_version >= '3.12'", 'python_full_version >= \\"3.12\\"'),
        ),
        False,
    ),
    Edit(
        "specifier-restyled",
        "forked-app",
        (
            ('"packaging>=23,<24;', '"packaging <24, >=23 ;'),
            ('"six>=1.16"', '"Six >= 1.16"'),
            ('"pyproject-metadata>=0.9"', '"PyProject_Metadata>=0.9"'),
        ),
        False,
    ),
    Edit(
        "reordered-and-commented",
        "forked-app",
        (('  "six>=1.16",\n', ""), ('  "pyproject-metadata>=0.9",\n', '  "pyproject-metadata>=0.9",\n  "six>=1.16",  # moved\n')),
        False,
    ),
    Edit("description-changed", "extras-app", (("description = ", 'description = "Changed" # '),), False),
    Edit(
        "platform-system-as-uv-writes-it",
        "markers-app",
        (("platform_system == 'Darwin'", "sys_platform == 'darwin'"),),
        False,
    ),
    Edit("extra-of-dependency-case", "extras-app", (('"requests[socks]>=2.31"', '"requests[SOCKS] >= 2.31"'),), False),
    Edit("member-unchanged-but-root-restyled", "workspace-app", (('"idna>=3.7"', '"IDNA >= 3.7"'),), False),
    # The root's [tool.uv.sources] entry for six is not the path dependency's: it gets six from the index.
    Edit("root-source-does-not-reach-a-path-dependency", "dynamic-app", (("# Only for", "# Only for"),), False),
    Edit("dynamic-version-member-bumped", "dynamic-app", (('__version__ = "0.3.0"', '__version__ = "0.4.0"'),),
         False, file="packages/dynmember/src/dynmember/__init__.py"),
    Edit(
        "sources-reordered",
        "sources-app",
        (
            ('  { url = "https://files.pythonhosted.org/packages/b7/ce/149a00dd41f10bc29e5921b496af8b574d8413afcd5e30dfa0ed46c2cc5e/six-1.17.0-py2.py3-none-any.whl", extra = "pinned" },\n', ""),
            ("marker = \"sys_platform == 'darwin'\" },\n", "marker = \"sys_platform == 'darwin'\" },\n  { url = \"https://files.pythonhosted.org/packages/b7/ce/149a00dd41f10bc29e5921b496af8b574d8413afcd5e30dfa0ed46c2cc5e/six-1.17.0-py2.py3-none-any.whl\", extra = \"pinned\" },\n"),
        ),
        False,
    ),
]


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.id)
def test_edit(edit, tmp_path):
    project = edit.apply(tmp_path)
    python = "3.12" if edit.fixture == "spectra-demo" else "3.11"
    if not edit.stale:
        resolve(project, Target(python))
        return
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, Target(python))
    problem, fix = info.value.problem, info.value.fix
    assert "out of date" in problem
    assert "uv lock" in fix
    assert edit.detail in problem
    edited = (project / edit.file).resolve()
    assert str(edited) in problem
    # Skipping the check gives the old resolution back (it is a check, not a failure to read).
    resolve(project, Target(python), check_fresh=False)


@pytest.mark.network
@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.id)
def test_edit_agrees_with_uv_lock_locked(edit, tmp_path):
    """uv itself calls the lock out of date exactly for the edits expected to be stale."""
    project = edit.apply(tmp_path)
    run = subprocess.run(
        [*uv_command(), "lock", "--locked"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"},
    )
    if edit.stale:
        assert run.returncode == 1, run.stderr
        assert "needs to be updated" in run.stderr
    else:
        assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("fixture", ALL_FIXTURES)
def test_unchanged_copies_are_fresh(fixture, tmp_path):
    project = copy_fixture(fixture, tmp_path)
    lock = read_lock(find_lock(project))
    check_fresh(lock, project)  # does not raise
    python = "3.12" if fixture == "spectra-demo" else "3.11"
    # services-app's root is a deploy project with no dependencies of its own: its members have them.
    package = "api-svc" if fixture == "services-app" else None
    assert resolve(project, Target(python), package=package).distributions


def test_workspace_member_checked_from_the_member_directory(tmp_path):
    edit = next(e for e in EDITS if e.id == "member-adds-dependency")
    project = edit.apply(tmp_path)
    with pytest.raises(LambdaBuildError, match="out of date"):
        resolve(project / "packages" / "wsmember", T311)


def test_narrowed_requires_python_is_stale(tmp_path):
    project = copy_fixture("forked-app", tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('requires-python = ">=3.11"', 'requires-python = ">=3.12"'))
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T312)
    assert "out of date" in info.value.problem
    assert "requires-python" in info.value.problem


def test_requires_python_restyled_is_fresh(tmp_path):
    project = copy_fixture("forked-app", tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('requires-python = ">=3.11"', 'requires-python = ">= 3.11.0"'))
    assert resolve(project, T312).names()


def test_include_group_cycle(tmp_path):
    project = copy_fixture("extras-app", tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('lint = ["pyflakes>=3.2"]', 'lint = ["pyflakes>=3.2", { include-group = "dev" }]')
    )
    with pytest.raises(LambdaBuildError, match=r"dependency group '(dev|lint)' includes itself"):
        resolve(project, T311)


def test_include_of_an_undefined_group(tmp_path):
    project = copy_fixture("extras-app", tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('{ include-group = "lint" }', '{ include-group = "style" }'))
    with pytest.raises(LambdaBuildError, match="'style' is included but not defined"):
        resolve(project, T311)


def test_invalid_requirement_in_pyproject(tmp_path):
    project = copy_fixture("forked-app", tmp_path)
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six>=1.16"', '"six>=>1.16"'))
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311)
    assert "invalid requirement 'six>=>1.16'" in info.value.problem
    assert "pyproject.toml" in info.value.problem


def test_pyproject_syntax_error_names_the_line(tmp_path):
    project = copy_fixture("forked-app", tmp_path)
    pyproject = project / "pyproject.toml"
    lines = pyproject.read_text().splitlines()
    number = lines.index('requires-python = ">=3.11"') + 1
    lines[number - 1] = 'requires-python = ">=3.11'
    pyproject.write_text("\n".join(lines) + "\n")
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311)
    assert "TOML syntax error" in info.value.problem
    assert f"line {number}" in info.value.problem
    assert "pyproject.toml" in info.value.fix


def test_legacy_tool_uv_dev_dependencies_count_as_the_dev_group(tmp_path):
    # uv folds [tool.uv] dev-dependencies into the "dev" group it locks.
    project = copy_fixture("extras-app", tmp_path)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    text = text.replace('dev = ["iniconfig>=2.0", { include-group = "lint" }]', 'dev = [{ include-group = "lint" }]')
    text = text.replace("[tool.uv]\n", '[tool.uv]\ndev-dependencies = ["iniconfig>=2.0"]\n')
    pyproject.write_text(text)
    assert resolve(project, T311, groups=["dev"]).names() == ["attrs", "iniconfig", "pyflakes"]


def test_member_narrowing_requires_python_is_stale(tmp_path):
    project = copy_fixture("workspace-app", tmp_path)
    member = project / "packages" / "wsmember" / "pyproject.toml"
    member.write_text(member.read_text().replace('requires-python = ">=3.11"', 'requires-python = ">=3.12"'))
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T312)
    assert "out of date" in info.value.problem
    assert str(member.resolve()) in info.value.problem
    assert "'>=3.12'" in info.value.problem and "'>=3.11'" in info.value.problem


SOURCED_LOCK = """\
version = 1
revision = 2
requires-python = ">=3.11"

[[package]]
name = "app"
version = "0.1.0"
source = {{ editable = "." }}
dependencies = [
    {{ name = "six" }},
]

[package.metadata]
requires-dist = [{requirement}]

[[package]]
name = "six"
version = "1.17.0"
source = {source}
wheels = [
    {{ url = "https://files.example/six-1.17.0-py2.py3-none-any.whl", hash = "sha256:{digest}" }},
]
"""
SIX_URL = "https://files.example/six-1.17.0-py2.py3-none-any.whl"


@pytest.mark.parametrize("locked_with_source", [False, True])
@pytest.mark.parametrize("declared_with_source", [False, True])
def test_adding_or_removing_a_source(tmp_path, locked_with_source, declared_with_source):
    from helpers.projects import sha, write_project

    if locked_with_source:
        text = SOURCED_LOCK.format(
            requirement=f'{{ name = "six", url = "{SIX_URL}" }}', source=f'{{ url = "{SIX_URL}" }}', digest=sha("six")
        )
    else:
        text = SOURCED_LOCK.format(
            requirement='{ name = "six" }', source='{ registry = "https://pypi.org/simple" }', digest=sha("six")
        )
    pyproject = '[project]\nname = "app"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = ["six"]\n'
    if declared_with_source:
        pyproject += f'\n[tool.uv.sources]\nsix = {{ url = "{SIX_URL}" }}\n'
    project = write_project(tmp_path / "app", text, pyproject=pyproject)
    if locked_with_source == declared_with_source:
        assert resolve(project, T311).names() == ["six"]
    else:
        with pytest.raises(LambdaBuildError, match=r"out of date.*six"):
            resolve(project, T311)


@pytest.mark.network
def test_member_inherits_the_workspace_root_sources(tmp_path):
    """A member depending on another member gets its source from the root's [tool.uv.sources]."""
    project = copy_fixture("workspace-app", tmp_path)
    extra = project / "packages" / "wsextra"
    (extra / "src" / "wsextra").mkdir(parents=True)
    (extra / "src" / "wsextra" / "__init__.py").write_text("from wsmember import days_between\n")
    (extra / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        '[project]\nname = "wsextra"\nversion = "0.1.0"\nrequires-python = ">=3.11"\ndependencies = ["wsmember>=0.2"]\n'
    )
    root = project / "pyproject.toml"
    text = root.read_text()
    text = text.replace('members = ["packages/wsmember"]', 'members = ["packages/wsmember", "packages/wsextra"]')
    text = text.replace('"idna>=3.7",', '"idna>=3.7",\n  "wsextra",')
    text = text.replace("wsmember = { workspace = true }", "wsmember = { workspace = true }\nwsextra = { workspace = true }")
    root.write_text(text)
    run = subprocess.run([*uv_command(), "lock"], cwd=project, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert 'requires-dist = [{ name = "wsmember", editable = "packages/wsmember" }]' in (project / "uv.lock").read_text()
    assert resolve(project, T311).names() == ["idna", "python-dateutil", "tzdata", "wsextra", "wsmember"]
    assert resolve(extra, T311).names() == ["python-dateutil", "tzdata", "wsmember"]


def test_requires_python_of_a_path_dependency_is_not_the_lock_s(tmp_path):
    # uv's requires-python is the workspace members' intersection; a local
    # library used through a path source narrowing its own range does not change it.
    project = copy_fixture("sources-app", tmp_path)
    library = project / "libs" / "shouty" / "pyproject.toml"
    library.write_text(library.read_text().replace('requires-python = ">=3.11"', 'requires-python = ">=3.8,<3.13"'))
    assert "shouty" in resolve(project, T311).names()
    # The project's own range still counts.
    own = project / "pyproject.toml"
    own.write_text(own.read_text().replace('requires-python = ">=3.11"', 'requires-python = ">=3.11,<3.13"'))
    with pytest.raises(LambdaBuildError, match="requires-python"):
        resolve(project, T311)


# --- dynamic metadata, read through the build backend or trusted ------------------


def test_dynamic_dependencies_of_a_member_are_trusted_without_its_source_tree(tmp_path):
    project = copy_fixture("dynamic-app", tmp_path)
    member = project / "packages" / "dynmember"
    for child in list(member.iterdir()):
        if child.name != "pyproject.toml":
            __import__("shutil").rmtree(child) if child.is_dir() else child.unlink()
    resolution = resolve(project, T312, cache=tmp_path / "cache")
    assert "dynmember" in resolution.names()
    (note,) = resolution.notes
    assert note.startswith(f"dynmember: dependencies dynamic in {member / 'pyproject.toml'}; trusted uv.lock's")
    assert "only pyproject.toml is in" in note
    # Without a cache to keep the backend's answer in, the lock is trusted too, and the note says so.
    assert "no cache" in resolve(project, T312).notes[0]


@pytest.mark.network
def test_dynamic_dependencies_of_a_member_are_read_through_its_build_backend(tmp_path):
    project = copy_fixture("dynamic-app", tmp_path)
    cache = tmp_path / "cache"
    resolution = resolve(project, T312, cache=cache)
    assert resolution.notes == (
        f"dynmember: dependencies dynamic in {project / 'packages' / 'dynmember' / 'pyproject.toml'}; "
        "read through its build backend (setuptools.build_meta)",
    )
    assert len(list((cache / "metadata").rglob("*.json"))) == 1
    # requirements.txt is one of the member's cache-keys: changing it is seen, and named.
    requirements = project / "packages" / "dynmember" / "requirements.txt"
    requirements.write_text("idna>=3.7\nsix>=1.16\n")
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T312, cache=cache)
    problem = info.value.problem
    assert problem == (
        f"{project / 'uv.lock'} is out of date with {project / 'packages' / 'dynmember' / 'pyproject.toml'}: "
        "[project] dependencies (from its build backend): six from { url = \"https://files.pythonhosted.org/"
        "packages/b7/ce/149a00dd41f10bc29e5921b496af8b574d8413afcd5e30dfa0ed46c2cc5e/six-1.17.0-py2.py3-none-any.whl\" }"
        " is declared but not in uv.lock"
    )  # a member: the workspace root's source for six applies to it
    run = subprocess.run([*uv_command(), "lock", "--locked"], cwd=project, capture_output=True, text=True,
                         timeout=300, env={**__import__("os").environ, "UV_PYTHON_DOWNLOADS": "never"})
    assert run.returncode == 1 and "needs to be updated" in run.stderr  # uv agrees
    # A backend that fails: the lock is trusted and the note gives the backend's last line.
    (project / "packages" / "dynmember" / "pyproject.toml").write_text(
        (project / "packages" / "dynmember" / "pyproject.toml").read_text().replace(
            'version = { attr = "dynmember.__version__" }', 'version = { attr = "dynmember.no_such_name" }'))
    resolution = resolve(project, T312, cache=cache)
    assert "trusted uv.lock's (its build backend (setuptools.build_meta) could not give the metadata" in (
        resolution.notes[0])


def test_a_changed_specifier_names_the_package_once_with_both_sides(tmp_path):
    edit = next(e for e in EDITS if e.id == "change-specifier")
    project = edit.apply(tmp_path)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311)
    detail = info.value.problem.split(": ", 2)[2]
    assert detail == "six: specifier '>=1.17' in pyproject.toml, '>=1.16' in uv.lock"
    assert info.value.problem.count("six") == 1


def test_a_removed_source_says_where_the_package_came_from(tmp_path):
    edit = next(e for e in EDITS if e.id == "path-dependency-own-source-removed")
    project = edit.apply(tmp_path)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T312)
    assert info.value.problem.endswith(
        "[project] dependencies and optional-dependencies: attrs: uv.lock has it from a source that "
        "[tool.uv.sources] no longer gives")
