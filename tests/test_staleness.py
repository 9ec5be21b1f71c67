"""Is uv.lock still the resolution of pyproject.toml? Edits to copies of the fixtures."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import FIXTURES, copy_fixture, uv_command

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lock import find_lock, read_lock, resolve
from hatch_lambda.staleness import check_fresh
from hatch_lambda.target import Target

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
    assert resolve(project, Target(python)).distributions


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
    with pytest.raises(LambdaBuildError, match="dependency group '(dev|lint)' includes itself"):
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
    from conftest import sha, write_project

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
        with pytest.raises(LambdaBuildError, match="out of date.*six"):
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
