"""The uv.lock reader, on small hand-written locks and on the fixture projects."""

from __future__ import annotations

import hashlib
import re

import pytest

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import find_lock, read_lock
from hatch_lambda.lockfile.resolve import resolve
from hatch_lambda.runtime.target import Target

from helpers.projects import copy_fixture, fixture_path, sha, write_project

INDEX = "https://pypi.org/simple"
T311 = Target("3.11", "x86_64")
T312 = Target("3.12", "x86_64")
T312_ARM = Target("3.12", "arm64")
T313 = Target("3.13", "x86_64")


def wheel_file(filename: str) -> str:
    return f'{{ url = "https://files.example/{filename}", hash = "sha256:{sha(filename)}", size = 500 }}'


def package(
    name: str,
    version: str,
    *,
    wheels: tuple[str, ...] = ("py3-none-any",),
    sdist: bool = True,
    dependencies: str = "",
    source: str = f'{{ registry = "{INDEX}" }}',
    tail: str = "",
) -> str:
    """One ``[[package]]`` block in uv's layout; ``wheels`` are tags or whole file names."""
    stem = f"{name.replace('-', '_')}-{version}"
    lines = ["[[package]]", f'name = "{name}"', f'version = "{version}"', f"source = {source}"]
    if dependencies:
        lines.append(f"dependencies = [\n{dependencies.strip()}\n]")
    if sdist:
        lines.append(
            f'sdist = {{ url = "https://files.example/{stem}.tar.gz", hash = "sha256:{sha(stem)}", size = 1000 }}'
        )
    if wheels:
        names = [w if w.endswith(".whl") else f"{stem}-{w}.whl" for w in wheels]
        lines.append("wheels = [\n" + "".join(f"    {wheel_file(n)},\n" for n in names) + "]")
    if tail:
        lines.append(tail.strip())
    return "\n".join(lines) + "\n"


def root(dependencies: str = "", *, name: str = "app", tail: str = "", source: str = '{ editable = "." }') -> str:
    return package(name, "0.1.0", wheels=(), sdist=False, dependencies=dependencies, source=source, tail=tail)


def lock(*packages: str, requires_python: str = ">=3.11", header: str = "") -> str:
    head = f'version = 1\nrevision = 2\nrequires-python = "{requires_python}"\n{header}\n'
    return head + "\n".join(packages)


def edge(name: str, *, version: str | None = None, marker: str | None = None, extra: list[str] | None = None) -> str:
    parts = [f'name = "{name}"']
    if version:
        parts.append(f'version = "{version}"')
        parts.append(f'source = {{ registry = "{INDEX}" }}')
    if extra:
        parts.append("extra = [" + ", ".join(f'"{e}"' for e in extra) + "]")
    if marker:
        parts.append(f'marker = "{marker}"')
    return "    { " + ", ".join(parts) + " },"


def pins(resolution) -> set[str]:
    return {dist.pin for dist in resolution.distributions}


def by_name(resolution) -> dict:
    return {dist.name: dist for dist in resolution.distributions}


# --- forks -------------------------------------------------------------------

FORKED = lock(
    root(
        "\n".join(
            [
                edge("lib", version="1.0", marker="python_full_version < '3.12'"),
                edge("lib", version="2.0", marker="python_full_version >= '3.12'"),
                edge("user"),
            ]
        )
    ),
    package("lib", "1.0", dependencies=edge("old-helper")),
    package("lib", "2.0", dependencies=edge("new-helper")),
    package("new-helper", "5.0"),
    package("old-helper", "4.0"),
    package(
        "user",
        "3.0",
        dependencies="\n".join(
            [
                edge("lib", version="1.0", marker="python_full_version < '3.12'"),
                edge("lib", version="2.0", marker="python_full_version >= '3.12'"),
            ]
        ),
    ),
    header='resolution-markers = [\n    "python_full_version >= \'3.12\'",\n    "python_full_version < \'3.12\'",\n]',
)


def test_fork_picks_the_version_the_edge_names(tmp_path):
    project = write_project(tmp_path / "app", FORKED)
    assert pins(resolve(project, T311, check_fresh=False)) == {"lib==1.0", "old-helper==4.0", "user==3.0"}
    for target in (T312, T312_ARM, T313):
        assert pins(resolve(project, target, check_fresh=False)) == {"lib==2.0", "new-helper==5.0", "user==3.0"}


def test_fork_on_the_real_forked_fixture():
    project = fixture_path("forked-app")
    assert by_name(resolve(project, T311))["packaging"].version == "23.2"
    newer = by_name(resolve(project, T312))["packaging"].version
    assert int(newer.split(".")[0]) >= 24
    assert "pyproject-metadata" in by_name(resolve(project, T313))


def test_fork_by_source(tmp_path):
    mirror = "https://mirror.example/simple"
    text = lock(
        root(
            '    { name = "lib", version = "1.0", source = { registry = "https://mirror.example/simple" }, '
            "marker = \"platform_machine == 'aarch64'\" },\n"
            '    { name = "lib", version = "1.0", source = { registry = "https://pypi.org/simple" }, '
            "marker = \"platform_machine == 'x86_64'\" },"
        ),
        package("lib", "1.0", source=f'{{ registry = "{mirror}" }}', wheels=("lib-1.0-py3-none-any.whl",)),
        package("lib", "1.0", wheels=("lib-1.0-py2.py3-none-any.whl",)),
    )
    project = write_project(tmp_path / "app", text)
    arm = by_name(resolve(project, T312_ARM, check_fresh=False))["lib"]
    x86 = by_name(resolve(project, T312, check_fresh=False))["lib"]
    assert arm.source == mirror and arm.file.filename == "lib-1.0-py3-none-any.whl"
    assert x86.source == INDEX and x86.file.filename == "lib-1.0-py2.py3-none-any.whl"


def test_ambiguous_edge_is_an_inconsistent_lock(tmp_path):
    text = lock(root(edge("lib")), package("lib", "1.0"), package("lib", "2.0"))
    project = write_project(tmp_path / "app", text)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    assert "lib" in info.value.problem and "2 entries" in info.value.problem
    assert "uv lock" in info.value.fix


def test_edge_to_a_missing_package(tmp_path):
    project = write_project(tmp_path / "app", lock(root(edge("ghost"))))
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    assert "ghost" in info.value.problem and "no entry" in info.value.problem


# --- markers on edges --------------------------------------------------------


def test_edge_markers_are_judged_for_the_target(tmp_path):
    text = lock(
        root(
            "\n".join(
                [
                    edge("arm-only", marker="platform_machine == 'aarch64'"),
                    edge("x86-only", marker="platform_machine == 'x86_64'"),
                    edge("windows", marker="sys_platform == 'win32'"),
                    edge("pypy", marker="platform_python_implementation == 'PyPy'"),
                    edge("old-python", marker="python_full_version < '3.12'"),
                    edge("everywhere"),
                ]
            )
        ),
        *(package(n, "1.0") for n in ("arm-only", "everywhere", "old-python", "pypy", "windows", "x86-only")),
    )
    project = write_project(tmp_path / "app", text)
    assert resolve(project, T311, check_fresh=False).names() == ["everywhere", "old-python", "x86-only"]
    assert resolve(project, T312_ARM, check_fresh=False).names() == ["arm-only", "everywhere"]


def test_markers_fixture_per_target():
    project = fixture_path("markers-app")
    expected = {
        ("3.11", "x86_64"): {"attrs", "certifi", "six", "tomli"},
        ("3.11", "arm64"): {"attrs", "idna", "six", "tomli"},
        ("3.12", "x86_64"): {"attrs", "certifi", "six"},
        ("3.13", "arm64"): {"attrs", "idna", "six", "typing-extensions"},
    }
    for (python, arch), names in expected.items():
        assert set(resolve(project, Target(python, arch)).names()) == names, (python, arch)


def test_invalid_marker_in_the_lock(tmp_path):
    text = lock(root(edge("lib", marker="python_version >>> '3'")), package("lib", "1.0"))
    project = write_project(tmp_path / "app", text)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    assert "invalid marker on lib" in info.value.problem


# --- extras and groups -------------------------------------------------------

EXTRAS = lock(
    root(
        edge("core"),
        tail="""
[package.optional-dependencies]
web = [
    { name = "client", extra = ["fast"] },
]
cli = [
    { name = "clicky" },
]

[package.dev-dependencies]
dev = [
    { name = "tester" },
    { name = "linter" },
]
lint = [
    { name = "linter" },
]
""",
    ),
    package("clicky", "1.0"),
    package(
        "client",
        "2.0",
        dependencies=edge("client-base"),
        tail="""
[package.optional-dependencies]
fast = [
    { name = "speedup" },
]
slow = [
    { name = "slowpoke" },
]
""",
    ),
    package("client-base", "1.0"),
    package("core", "1.0"),
    package("linter", "1.0"),
    package("slowpoke", "1.0"),
    package("speedup", "1.0"),
    package("tester", "1.0", dependencies=edge("tester-plugin")),
    package("tester-plugin", "1.0"),
)


def test_extras_bring_their_dependencies_and_the_extras_they_name(tmp_path):
    project = write_project(tmp_path / "app", EXTRAS)
    assert resolve(project, T311, check_fresh=False).names() == ["core"]
    web = resolve(project, T311, extras=["web"], check_fresh=False)
    # client[fast]: the client, its base dependency and its "fast" extra, not "slow".
    assert web.names() == ["client", "client-base", "core", "speedup"]
    both = resolve(project, T311, extras=["CLI", "Web"], check_fresh=False)
    assert both.names() == ["clicky", "client", "client-base", "core", "speedup"]
    assert both.extras == ("cli", "web")


def test_groups(tmp_path):
    project = write_project(tmp_path / "app", EXTRAS)
    dev = resolve(project, T311, groups=["dev"], check_fresh=False)
    assert dev.names() == ["core", "linter", "tester", "tester-plugin"]
    assert dev.groups == ("dev",)
    lint = resolve(project, T311, groups=["lint"], check_fresh=False)
    assert lint.names() == ["core", "linter"]
    mixed = resolve(project, T311, groups=["lint"], extras=["cli"], check_fresh=False)
    assert mixed.names() == ["clicky", "core", "linter"]


def test_one_package_reached_with_different_extras(tmp_path):
    text = lock(
        root(edge("a") + "\n" + edge("b")),
        package("a", "1.0", dependencies=edge("child", extra=["x"])),
        package("b", "1.0", dependencies=edge("child", extra=["y"])),
        package(
            "child",
            "1.0",
            tail='[package.optional-dependencies]\nx = [\n    { name = "xdep" },\n]\ny = [\n    { name = "ydep" },\n]\n'
            'z = [\n    { name = "zdep" },\n]',
        ),
        package("xdep", "1.0"),
        package("ydep", "1.0"),
        package("zdep", "1.0"),
    )
    project = write_project(tmp_path / "app", text)
    assert resolve(project, T311, check_fresh=False).names() == ["a", "b", "child", "xdep", "ydep"]


def test_extras_fixture():
    project = fixture_path("extras-app")
    assert resolve(project, T311).names() == ["attrs"]
    http = by_name(resolve(project, T311, extras=["http"]))
    assert {"requests", "pysocks", "urllib3", "idna", "certifi", "charset-normalizer"} <= set(http)
    assert "pyyaml" not in http
    dev = resolve(project, T311, groups=["dev"]).names()
    assert dev == ["attrs", "iniconfig", "pyflakes"]
    assert resolve(project, T311, groups=["lint"]).names() == ["attrs", "pyflakes"]


# --- conflicts ---------------------------------------------------------------

CONFLICT = lock(
    root(
        edge("base"),
        tail="""
[package.optional-dependencies]
old = [
    { name = "client" },
    { name = "transport", version = "1.0", source = { registry = "https://pypi.org/simple" } },
]
new = [
    { name = "client" },
    { name = "transport", version = "2.0", source = { registry = "https://pypi.org/simple" } },
]
""",
    ),
    package("base", "1.0"),
    package(
        "client",
        "3.0",
        dependencies="""
    { name = "transport", version = "1.0", source = { registry = "https://pypi.org/simple" }, marker = "extra == 'extra-3-app-old'" },
    { name = "transport", version = "2.0", source = { registry = "https://pypi.org/simple" }, marker = "extra != 'extra-3-app-old' or extra == 'extra-3-app-new'" },
""",
    ),
    package("transport", "1.0"),
    package("transport", "2.0"),
    header='conflicts = [[\n    { package = "app", extra = "old" },\n    { package = "app", extra = "new" },\n]]',
)


def test_conflict_markers_on_transitive_edges_follow_the_active_extra(tmp_path):
    project = write_project(tmp_path / "app", CONFLICT)
    old = resolve(project, T311, extras=["old"], check_fresh=False)
    assert pins(old) == {"base==1.0", "client==3.0", "transport==1.0"}
    new = resolve(project, T311, extras=["new"], check_fresh=False)
    assert pins(new) == {"base==1.0", "client==3.0", "transport==2.0"}
    assert pins(resolve(project, T311, check_fresh=False)) == {"base==1.0"}


def test_conflict_fixture_locks_two_urllib3_releases():
    project = fixture_path("extras-app")
    legacy = by_name(resolve(project, T311, extras=["legacy"]))["urllib3"].version
    modern = by_name(resolve(project, T311, extras=["modern"]))["urllib3"].version
    http = by_name(resolve(project, T311, extras=["http"]))["urllib3"].version
    assert legacy.startswith("1.26.")
    assert int(modern.split(".")[0]) >= 2
    assert http == modern
    # A non-conflicting combination keeps the legacy release.
    assert by_name(resolve(project, T311, extras=["legacy", "http"]))["urllib3"].version == legacy


def test_conflict_between_a_group_and_an_extra_on_the_fixture():
    project = fixture_path("extras-app")
    oldreq = by_name(resolve(project, T311, groups=["oldreq"]))
    assert oldreq["requests"].version == "2.31.0"
    assert oldreq["idna"].version == "3.7"
    assert oldreq["urllib3"].version.startswith("2.")
    assert by_name(resolve(project, T311, extras=["http"]))["requests"].version != "2.31.0"
    # A group naming the project itself with an extra brings that extra's dependencies.
    assert resolve(project, T311, groups=["selftest"]).names() == ["attrs", "pluggy", "pyyaml"]


@pytest.mark.parametrize(
    "extras, groups, named",
    [
        (["legacy", "modern"], [], "extra 'legacy' and extra 'modern'"),
        (["http", "yaml"], ["oldreq"], "extra 'http' and group 'oldreq'"),
        (["Legacy", "MODERN", "http"], ["dev"], "extra 'legacy' and extra 'modern'"),
    ],
)
def test_declared_conflicts_are_refused(extras, groups, named):
    with pytest.raises(LambdaBuildError) as info:
        resolve(fixture_path("extras-app"), T311, extras=extras, groups=groups)
    assert named in info.value.problem
    assert "[tool.uv] conflicts" in info.value.problem
    assert "only one" in info.value.fix


def test_conflicts_of_another_package_do_not_apply(tmp_path):
    text = CONFLICT.replace('{ package = "app", extra = "old" }', '{ package = "other", extra = "old" }')
    text = text.replace('{ package = "app", extra = "new" }', '{ package = "other", extra = "new" }')
    project = write_project(tmp_path / "app", text)
    # Not declared for "app": the lock is read as it is (and yields two transports).
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, extras=["old", "new"], check_fresh=False)
    assert "transport==1.0" in info.value.problem and "transport==2.0" in info.value.problem
    assert "one version of a package" in info.value.problem
    assert pins(resolve(project, T311, extras=["old"], check_fresh=False)) == {"base==1.0", "client==3.0", "transport==1.0"}


def test_an_extra_named_on_an_edge_activates_its_pseudo_extra(tmp_path):
    # "extra-6-member-fast" is true once some edge asks for member[fast].
    text = lock(
        root(edge("member", extra=["fast"]) + "\n" + edge("other")),
        package("booster", "1.0"),
        package(
            "member",
            "1.0",
            source='{ editable = "packages/member" }',
            wheels=(),
            sdist=False,
            tail='[package.optional-dependencies]\nfast = [\n    { name = "speed" },\n]',
        ),
        package("other", "1.0", dependencies=edge("booster", marker="extra == 'extra-6-member-fast'")),
        package("speed", "1.0"),
    )
    project = write_project(tmp_path / "app", text)
    assert resolve(project, T311, check_fresh=False).names() == ["booster", "member", "other", "speed"]
    without = text.replace('{ name = "member", extra = ["fast"] }', '{ name = "member" }')
    project = write_project(tmp_path / "app2", without)
    assert resolve(project, T311, check_fresh=False).names() == ["member", "other"]


# --- workspaces and local sources -------------------------------------------

WORKSPACE = lock(
    root(edge("member") + "\n" + edge("tools")),
    package("dep", "1.0"),
    package("member", "0.2.0", source='{ editable = "packages/member" }', wheels=(), sdist=False, dependencies=edge("dep")),
    package("tools", "0.0.0", source='{ virtual = "packages/tools" }', wheels=(), sdist=False, dependencies=edge("toolbox")),
    package("toolbox", "1.0"),
    header='[manifest]\nmembers = [\n    "app",\n    "member",\n    "tools",\n]',
)


def test_workspace_member_is_a_local_distribution(tmp_path):
    project = write_project(tmp_path / "app", WORKSPACE)
    resolution = resolve(project, T311, check_fresh=False)
    # The project itself and the virtual member are left out; the virtual
    # member's own dependencies are not.
    assert resolution.names() == ["dep", "member", "toolbox"]
    member = by_name(resolution)["member"]
    assert member.source_kind == "editable"
    assert member.source == "packages/member"
    assert member.file is None
    assert member.is_local
    assert not by_name(resolution)["dep"].is_local
    assert read_lock(resolution.lock_path).members == ["app", "member", "tools"]


def test_package_picks_another_workspace_member(tmp_path):
    project = write_project(tmp_path / "app", WORKSPACE)
    resolution = resolve(project, T311, package="Member", check_fresh=False)
    assert resolution.root == "member"
    assert resolution.names() == ["dep"]


def test_lock_of_the_workspace_is_found_from_a_member(tmp_path):
    project = write_project(tmp_path / "app", WORKSPACE)
    member_dir = project / "packages" / "member"
    member_dir.mkdir(parents=True)
    (member_dir / "pyproject.toml").write_text('[project]\nname = "member"\nversion = "0.2.0"\n')
    assert find_lock(member_dir) == project / "uv.lock"
    resolution = resolve(member_dir, T311, check_fresh=False)
    assert resolution.root == "member"
    assert resolution.names() == ["dep"]


def test_workspace_fixture():
    project = fixture_path("workspace-app")
    resolution = resolve(project, T311)
    assert resolution.root == "wsapp"
    assert resolution.names() == ["idna", "python-dateutil", "tzdata", "wsmember"]
    member = by_name(resolution)["wsmember"]
    assert (member.source_kind, member.source, member.version) == ("editable", "packages/wsmember", "0.2.0")
    # From the member's own directory, the workspace lock is used and the member is the root.
    from_member = resolve(project / "packages" / "wsmember", T311)
    assert from_member.lock_path == project / "uv.lock"
    assert from_member.names() == ["python-dateutil", "tzdata"]


def test_git_path_and_url_sources(tmp_path):
    # Shapes uv writes for `[tool.uv.sources]` git, path (a wheel and an sdist) and url entries.
    wheel_hash = sha("locallib")
    text = lock(
        root("\n".join(edge(n) for n in ("gitdep", "locallib", "localsdist", "remote", "remotesdist"))),
        '[[package]]\nname = "gitdep"\nversion = "0.3.0"\n'
        'source = { git = "https://git.example/gitdep?rev=v0.3#0123456789abcdef0123456789abcdef01234567" }\n',
        '[[package]]\nname = "locallib"\nversion = "1.0"\n'
        'source = { path = "wheels/locallib-1.0-py2.py3-none-any.whl" }\n'
        f'wheels = [\n    {{ filename = "locallib-1.0-py2.py3-none-any.whl", hash = "sha256:{wheel_hash}" }},\n]\n',
        '[[package]]\nname = "localsdist"\nversion = "2.0"\nsource = { path = "vendor/localsdist-2.0.tar.gz" }\n'
        f'sdist = {{ hash = "sha256:{sha("localsdist")}" }}\n',
        '[[package]]\nname = "remote"\nversion = "1.17.0"\n'
        'source = { url = "https://files.example/remote-1.17.0-py2.py3-none-any.whl" }\n'
        f'wheels = [\n    {{ url = "https://files.example/remote-1.17.0-py2.py3-none-any.whl", hash = "sha256:{sha("remote")}" }},\n]\n',
        '[[package]]\nname = "remotesdist"\nversion = "0.6.2"\n'
        'source = { url = "https://files.example/remotesdist-0.6.2.tar.gz" }\n'
        f'sdist = {{ hash = "sha256:{sha("remotesdist")}" }}\n',
    )
    project = write_project(tmp_path / "app", text)
    dists = by_name(resolve(project, T311, check_fresh=False))
    assert dists["gitdep"].source_kind == "git" and dists["gitdep"].file is None
    local = dists["locallib"]
    assert (local.source_kind, local.file.kind, local.file.label) == ("path", "wheel", "py3-none-any")
    assert local.file.filename == "locallib-1.0-py2.py3-none-any.whl"
    assert local.file.path == "wheels/locallib-1.0-py2.py3-none-any.whl" and local.file.url is None
    assert local.file.sha256 == wheel_hash
    local_sdist = dists["localsdist"].file
    assert (local_sdist.kind, local_sdist.filename, local_sdist.path) == (
        "sdist",
        "localsdist-2.0.tar.gz",
        "vendor/localsdist-2.0.tar.gz",
    )
    remote = dists["remote"].file
    assert remote.url == "https://files.example/remote-1.17.0-py2.py3-none-any.whl"
    remote_sdist = dists["remotesdist"].file
    assert remote_sdist.kind == "sdist"
    assert remote_sdist.url == "https://files.example/remotesdist-0.6.2.tar.gz"
    assert remote_sdist.filename == "remotesdist-0.6.2.tar.gz"
    assert remote_sdist.sha256 == sha("remotesdist")


def test_sources_fixture():
    project = fixture_path("sources-app")
    x86 = by_name(resolve(project, T311))
    arm = by_name(resolve(project, Target("3.11", "arm64")))
    # idna: from the index on x86_64, from a direct URL on aarch64 (a source limited by a marker).
    assert x86["idna"].source_kind == "registry"
    assert arm["idna"].source_kind == "url"
    assert arm["idna"].file.url == arm["idna"].source and arm["idna"].file.filename == "idna-3.10-py3-none-any.whl"
    greeting = x86["greeting"]
    assert (greeting.source_kind, greeting.file.kind, greeting.file.path) == (
        "path",
        "wheel",
        "wheels/greeting-1.0.0-py3-none-any.whl",
    )
    on_disk = (project / greeting.file.path).read_bytes()
    assert hashlib.sha256(on_disk).hexdigest() == greeting.file.sha256
    assert (x86["shouty"].source_kind, x86["shouty"].file) == ("directory", None)
    assert by_name(resolve(project, T311, groups=["alt"]))["iniconfig"].source_kind == "url"
    assert by_name(resolve(project, T311, groups=["dev"]))["iniconfig"].source_kind == "registry"


def test_unknown_source_kind(tmp_path):
    text = lock(root(edge("odd")), '[[package]]\nname = "odd"\nversion = "1.0"\nsource = { carrier-pigeon = "x" }\n')
    project = write_project(tmp_path / "app", text)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    assert "odd" in info.value.problem and "unknown source" in info.value.problem


# --- file choice -------------------------------------------------------------

NATIVE_WHEELS = (
    "py3-none-any",
    "cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64",
    "cp311-cp311-manylinux_2_28_x86_64",
    "cp311-cp311-musllinux_1_2_x86_64",
    "cp311-cp311-macosx_11_0_arm64",
    "cp312-cp312-manylinux_2_17_x86_64",
    "cp312-cp312-manylinux_2_28_x86_64",
    "cp312-cp312-manylinux_2_35_x86_64",
    "cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64",
    "cp312-abi3-manylinux_2_17_x86_64",
    "cp312-cp312-win_amd64",
)


def test_wheel_choice_follows_tag_order(tmp_path):
    text = lock(root(edge("fastlib")), package("fastlib", "1.0", wheels=NATIVE_WHEELS))
    project = write_project(tmp_path / "app", text)

    def chosen(target):
        return by_name(resolve(project, target, check_fresh=False))["fastlib"].file

    # 3.11 on glibc 2.26: the 2_28 wheel is too new; the 2_17 one fits.
    assert chosen(T311).label == "cp311-cp311-manylinux_2_17_x86_64"
    assert chosen(T311).filename == "fastlib-1.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    # 3.12 on glibc 2.34: the newest wheel it can load (2_28), not 2_35, not abi3.
    assert chosen(T312).label == "cp312-cp312-manylinux_2_28_x86_64"
    assert chosen(T312_ARM).label == "cp312-cp312-manylinux_2_17_aarch64"
    # 3.13 has no own wheel: abi3 beats the pure-Python one.
    assert chosen(T313).label == "cp312-abi3-manylinux_2_17_x86_64"
    # 3.13 on arm: only the pure-Python wheel fits.
    assert chosen(Target("3.13", "arm64")).label == "py3-none-any"
    file = chosen(T312)
    assert file.kind == "wheel"
    assert file.url == f"https://files.example/{file.filename}"
    assert file.sha256 == sha(file.filename)
    assert file.size == 500


def test_sdist_is_the_fallback(tmp_path):
    text = lock(
        root(edge("only-sdist") + "\n" + edge("foreign-wheels")),
        package("foreign-wheels", "1.0", wheels=("cp312-cp312-win_amd64", "cp312-cp312-macosx_11_0_arm64")),
        package("only-sdist", "0.6.2", wheels=()),
    )
    project = write_project(tmp_path / "app", text)
    for dist in resolve(project, T312, check_fresh=False).distributions:
        assert dist.file.kind == "sdist"
        assert dist.file.label == "sdist"
        assert dist.file.filename.endswith(".tar.gz")
        assert dist.file.sha256 == sha(f"{dist.name.replace('-', '_')}-{dist.version}")


def test_sdist_fixture():
    dists = by_name(resolve(fixture_path("sdist-app"), T311))
    assert dists["docopt"].file.label == "sdist"
    assert dists["docopt"].file.filename == "docopt-0.6.2.tar.gz"
    assert dists["six"].file.label == "py3-none-any"


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_native_fixture_gets_manylinux_wheels_for_the_machine(python, arch):
    target = Target(python, arch)
    resolution = resolve(fixture_path("native-app"), target)
    assert resolution.names() == ["markupsafe", "orjson", "pyyaml"]
    cp = f"cp{python.replace('.', '')}"
    for dist in resolution.distributions:
        assert dist.file.kind == "wheel"
        assert dist.file.label.startswith(f"{cp}-{cp}-manylinux"), dist.file.label
        assert dist.file.label.endswith(target.machine)
        assert dist.file.label.split("-")[2] in target.platforms


def test_no_wheel_and_no_sdist(tmp_path):
    tags = [
        f"cp3{minor}-cp3{minor}-{platform}"
        for minor in (11, 12, 13)
        for platform in ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "macosx_12_0_arm64", "win_amd64")
    ]
    text = lock(root(edge("numpy") + "\n" + edge("pyarrow")), package("numpy", "2.1.0"), package("pyarrow", "18.0.0", wheels=tuple(tags), sdist=False))
    project = write_project(tmp_path / "app", text)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    problem, fix = info.value.problem, info.value.fix
    assert "pyarrow 18.0.0 has no wheel for python 3.11 x86_64" in problem
    assert "glibc 2.26" in problem
    assert "manylinux_2_28_x86_64" in problem and "manylinux_2_28_aarch64" in problem
    assert "cp311" in problem
    assert "numpy" not in problem
    assert "3.12" in fix
    assert "pin pyarrow" in fix and "glibc 2.26" in fix and "uv lock" in fix
    # The same lock is fine where the runtime's glibc is new enough.
    assert by_name(resolve(project, T312, check_fresh=False))["pyarrow"].file.label == "cp312-cp312-manylinux_2_28_x86_64"
    # Names the platforms in a few words, however many wheels there are.
    assert "macosx_12_0_arm64, win_amd64" in problem and problem.count("manylinux_2_28_x86_64") == 1


def test_no_wheel_fix_suggests_only_pythons_requires_python_allows(tmp_path):
    """pyarrow has wheels for 3.12 and 3.13 on glibc 2.28: a 3.11-only project is not told to use 3.12."""
    tags = [f"cp3{minor}-cp3{minor}-manylinux_2_28_x86_64" for minor in (12, 13)]
    text = lock(root(edge("pyarrow")), package("pyarrow", "18.0.0", wheels=tuple(tags), sdist=False),
                requires_python=">=3.11, <3.12")
    project = write_project(tmp_path / "app", text)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    assert "target python" not in info.value.fix and "3.12" not in info.value.fix
    assert info.value.fix.startswith("pin pyarrow to a release with a wheel for glibc 2.26 or older")
    wider = write_project(tmp_path / "wider", text.replace(">=3.11, <3.12", ">=3.11"))
    with pytest.raises(LambdaBuildError) as info:
        resolve(wider, T311, check_fresh=False)
    assert info.value.fix.startswith("target python 3.12 or 3.13 (which pyarrow has wheels for)")


def test_no_file_for_one_of_two_same_version_entries_from_different_indexes(tmp_path):
    mirror = "https://mirror.example/simple"
    text = lock(
        root(
            f'    {{ name = "lib", version = "1.0", source = {{ registry = "{mirror}" }}, '
            "marker = \"platform_machine == 'aarch64'\" },\n"
            f'    {{ name = "lib", version = "1.0", source = {{ registry = "{INDEX}" }}, '
            "marker = \"platform_machine == 'x86_64'\" },"
        ),
        package("lib", "1.0", source=f'{{ registry = "{mirror}" }}', wheels=("cp312-cp312-manylinux_2_17_aarch64",), sdist=False),
        package("lib", "1.0", wheels=("cp312-cp312-manylinux_2_28_x86_64",), sdist=False),
    )
    project = write_project(tmp_path / "app", text)
    assert by_name(resolve(project, T312, check_fresh=False))["lib"].source == INDEX
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    assert "lib 1.0 has no wheel for python 3.11 x86_64" in info.value.problem
    assert "manylinux_2_28_x86_64" in info.value.problem
    assert "aarch64" not in info.value.problem  # the other index's entry is not the one meant


# --- exclude -----------------------------------------------------------------

EXCLUDE = lock(
    root(edge("boto3") + "\n" + edge("app-lib")),
    package("app-lib", "1.0", dependencies=edge("jmespath") + "\n" + edge("six")),
    package("boto3", "1.0", dependencies=edge("botocore") + "\n" + edge("jmespath") + "\n" + edge("s3transfer")),
    package("botocore", "1.0", dependencies=edge("jmespath") + "\n" + edge("urllib3")),
    package("jmespath", "1.0"),
    package("s3transfer", "1.0", dependencies=edge("botocore")),
    package("six", "1.0"),
    package("urllib3", "2.0"),
)


def test_exclude_drops_what_only_the_excluded_package_needs(tmp_path):
    project = write_project(tmp_path / "app", EXCLUDE)
    everything = resolve(project, T311, check_fresh=False).names()
    assert everything == ["app-lib", "boto3", "botocore", "jmespath", "s3transfer", "six", "urllib3"]
    # boto3 goes with botocore, s3transfer and urllib3; jmespath stays for app-lib.
    assert resolve(project, T311, exclude=["Boto3"], check_fresh=False).names() == ["app-lib", "jmespath", "six"]
    # Excluding a shared leaf removes it everywhere.
    assert "jmespath" not in resolve(project, T311, exclude=["jmespath"], check_fresh=False).names()
    # botocore is still needed by boto3 and s3transfer only through itself.
    assert resolve(project, T311, exclude=["botocore"], check_fresh=False).names() == [
        "app-lib",
        "boto3",
        "jmespath",
        "s3transfer",
        "six",
    ]


def test_exclude_on_the_demo():
    project = fixture_path("spectra-demo")
    full = set(resolve(project, T312).names())
    assert {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "pyarrow", "pydantic"} <= full
    slim = set(resolve(project, T312, exclude=["boto3"]).names())
    # Powertools needs jmespath itself; botocore and s3transfer came only with boto3.
    assert "boto3" not in slim and "botocore" not in slim and "s3transfer" not in slim
    assert "jmespath" in slim and "pydantic" in slim and "pyarrow" in slim


# --- the resolution itself ---------------------------------------------------


def test_cycles_terminate(tmp_path):
    text = lock(root(edge("a")), package("a", "1.0", dependencies=edge("b")), package("b", "1.0", dependencies=edge("a") + "\n" + edge("app")))
    project = write_project(tmp_path / "app", text)
    assert resolve(project, T311, check_fresh=False).names() == ["a", "b"]


def test_resolution_fields(tmp_path):
    project = write_project(tmp_path / "app", EXCLUDE)
    resolution = resolve(project, T311, check_fresh=False)
    assert resolution.lock_path == (project / "uv.lock").resolve()
    assert resolution.lock_digest == hashlib.sha256((project / "uv.lock").read_bytes()).hexdigest()
    assert resolution.root == "app"
    assert resolution.target == T311
    assert resolution.extras == () and resolution.groups == ()
    assert [d.name for d in resolution.distributions] == sorted(d.name for d in resolution.distributions)
    assert all(d.source_kind == "registry" and d.source == INDEX for d in resolution.distributions)


def test_names_are_canonical(tmp_path):
    text = lock(root(edge("Zope.Interface")), package("zope-interface", "7.0"))
    project = write_project(tmp_path / "app", text)
    assert resolve(project, T311, check_fresh=False).names() == ["zope-interface"]


def test_virtual_root(tmp_path):
    text = lock(root(edge("six"), source='{ virtual = "." }'), package("six", "1.17.0"))
    project = write_project(tmp_path / "app", text)
    assert pins(resolve(project, T311, check_fresh=False)) == {"six==1.17.0"}


def test_demo_resolves_for_every_runtime_it_allows():
    project = fixture_path("spectra-demo")
    for python in ("3.12", "3.13"):
        for arch in ("x86_64", "arm64"):
            resolution = resolve(project, Target(python, arch))
            names = set(resolution.names())
            assert {"aws-lambda-powertools", "pydantic", "pydantic-core", "pydantic-settings", "boto3", "pyarrow"} <= names
            assert "spectra" not in names
            assert all(d.file is not None for d in resolution.distributions)


# --- errors ------------------------------------------------------------------


def test_no_lock(tmp_path):
    project = tmp_path / "app"
    project.mkdir()
    (project / ".git").mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "0"\n')
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311)
    assert "no uv.lock" in info.value.problem
    assert "uv lock" in info.value.fix


def test_lock_search_stops_at_the_repository_root(tmp_path):
    write_project(tmp_path / "outer", lock(root()))
    inner = tmp_path / "outer" / "inner"
    inner.mkdir()
    (inner / ".git").mkdir()
    with pytest.raises(LambdaBuildError, match=re.escape("no uv.lock")):
        find_lock(inner)


def test_toml_syntax_error_names_the_line(tmp_path):
    text = 'version = 1\nrevision = 2\nrequires-python = ">=3.11"\n\n[[package]]\nname = "app"\nversion = \n'
    project = write_project(tmp_path / "app", text)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311)
    assert "TOML syntax error" in info.value.problem
    assert "line 7" in info.value.problem
    assert "uv.lock" in info.value.problem
    assert "uv lock" in info.value.fix


def test_merge_conflict_markers_are_a_syntax_error(tmp_path):
    good = lock(root(edge("six")), package("six", "1.17.0"))
    text = good.replace('[[package]]\nname = "six"', '<<<<<<< HEAD\n[[package]]\nname = "six"', 1)
    project = write_project(tmp_path / "app", text)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311)
    line = text.splitlines().index("<<<<<<< HEAD") + 1
    assert f"line {line}" in info.value.problem
    assert "merge conflict" in info.value.fix


@pytest.mark.parametrize("version, shown", [("2", "2"), ('"1"', "'1'")])
def test_unknown_lock_version(tmp_path, version, shown):
    text = lock(root()).replace("version = 1\n", f"version = {version}\n", 1)
    project = write_project(tmp_path / "app", text)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311)
    assert f"lock file version {shown} is not supported" in info.value.problem
    assert "version 1" in info.value.problem


def test_missing_lock_version(tmp_path):
    project = write_project(tmp_path / "app", lock(root()).replace("version = 1\n", "", 1))
    with pytest.raises(LambdaBuildError, match="lock file version None is not supported"):
        resolve(project, T311)


def test_python_outside_requires_python():
    with pytest.raises(LambdaBuildError) as info:
        resolve(fixture_path("spectra-demo"), T311)
    assert "python 3.11 (Lambda runs 3.11.9) is outside the project's requires-python '>=3.12'" in info.value.problem
    assert "3.12, 3.13, 3.14" in info.value.fix


def test_requires_python_upper_bound(tmp_path):
    project = write_project(tmp_path / "app", lock(root(), requires_python=">=3.10, <3.12"))
    assert resolve(project, T311, check_fresh=False).names() == []
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T312, check_fresh=False)
    assert "outside" in info.value.problem
    assert info.value.fix == "target one of: 3.10, 3.11"


@pytest.mark.parametrize("python, arch", [("3.9", "x86_64"), ("3.15", "x86_64"), ("3.12", "s390x")])
def test_unknown_target_is_refused_before_reading(python, arch):
    with pytest.raises(LambdaBuildError):
        resolve(fixture_path("native-app"), Target(python, arch))


def test_unknown_extra_lists_the_known_ones():
    with pytest.raises(LambdaBuildError) as info:
        resolve(fixture_path("extras-app"), T311, extras=["nope", "http"])
    assert "extras-app has no extra 'nope'" in info.value.problem
    assert "http, legacy, modern, yaml" in info.value.fix
    assert "[project.optional-dependencies]" in info.value.fix


def test_unknown_group_lists_the_known_ones():
    with pytest.raises(LambdaBuildError) as info:
        resolve(fixture_path("extras-app"), T311, groups=["docs"])
    assert "has no group 'docs'" in info.value.problem
    assert "dev, lint, oldreq, selftest" in info.value.fix
    assert "[dependency-groups]" in info.value.fix


def test_extra_on_a_project_without_extras():
    with pytest.raises(LambdaBuildError) as info:
        resolve(fixture_path("native-app"), T311, extras=["fast"])
    assert "none defined" in info.value.fix


def test_project_missing_from_the_lock(tmp_path):
    # pyproject.toml names a project the lock does not have: the lock is stale.
    project = write_project(tmp_path / "app", lock(root(name="other")), name="renamed")
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311)
    assert "out of date" in info.value.problem and "renamed" in info.value.problem
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    assert "renamed" in info.value.problem and "no entry" in info.value.problem


def test_no_pyproject(tmp_path):
    project = write_project(tmp_path / "app", lock(root()))
    (project / "pyproject.toml").unlink()
    with pytest.raises(LambdaBuildError, match=re.escape("no pyproject.toml")):
        resolve(project, T311)


def test_pyproject_without_a_name(tmp_path):
    project = write_project(tmp_path / "app", lock(root()), pyproject='[project]\nversion = "1"\n')
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311)
    assert "has no [project] name" in info.value.problem
    assert "--package" in info.value.fix and "members: app" in info.value.fix


VIRTUAL_WORKSPACE = lock(
    package("api", "0.1.0", source='{ editable = "services/api" }', wheels=(), sdist=False, dependencies=edge("dep")),
    package("dep", "1.0"),
    package("worker", "0.1.0", source='{ editable = "services/worker" }', wheels=(), sdist=False),
    header='[manifest]\nmembers = [\n    "api",\n    "worker",\n]',
)


def test_virtual_workspace_root_lists_the_members_and_how_to_choose(tmp_path):
    project = write_project(tmp_path / "repo", VIRTUAL_WORKSPACE,
                            pyproject='[tool.uv.workspace]\nmembers = ["services/*"]\n')
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    assert str(project / "pyproject.toml") in info.value.problem
    assert "virtual workspace root" in info.value.problem
    assert "--package NAME" in info.value.fix and 'package = \"NAME\"' in info.value.fix
    assert "members: api, worker" in info.value.fix
    # Choosing one works.
    assert resolve(project, T311, package="api", check_fresh=False).names() == ["dep"]


@pytest.mark.parametrize("package_name", ["nonexistent", "dep"])
def test_package_must_be_a_workspace_member(tmp_path, package_name):
    """Like uv: a name the workspace does not have, or a dependency that is no member, is refused."""
    project = write_project(tmp_path / "repo", VIRTUAL_WORKSPACE,
                            pyproject='[tool.uv.workspace]\nmembers = ["services/*"]\n')
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, package=package_name, check_fresh=False)
    assert f"{package_name!r} is not a member of the workspace of {project / 'uv.lock'}" in info.value.problem
    assert "members: api, worker" in info.value.fix
    assert "out of date" not in str(info.value)


def test_package_of_a_single_project_lock(tmp_path):
    project = write_project(tmp_path / "app", lock(root(edge("six")), package("six", "1.17.0")))
    with pytest.raises(LambdaBuildError, match="'six' is not a member") as info:
        resolve(project, T311, package="six", check_fresh=False)
    assert "members: app" in info.value.fix


def test_lock_limited_to_other_environments_is_refused(tmp_path):
    text = lock(root(edge("six")), package("six", "1.17.0"),
                header='supported-markers = [\n    "sys_platform == \'darwin\'",\n    "sys_platform == \'win32\'",\n]')
    project = write_project(tmp_path / "app", text)
    with pytest.raises(LambdaBuildError) as info:
        resolve(project, T311, check_fresh=False)
    assert "was resolved only for the environments \"sys_platform == 'darwin'\"" in info.value.problem
    assert "[tool.uv] environments" in info.value.problem and "python 3.11 x86_64" in info.value.problem
    assert "sys_platform == 'linux'" in info.value.fix
    linux = text.replace("sys_platform == 'win32'", "sys_platform == 'linux'")
    project = write_project(tmp_path / "ok", linux)
    assert resolve(project, T311, check_fresh=False).names() == ["six"]


def test_copied_fixture_resolves_like_the_original(tmp_path):
    copy = copy_fixture("extras-app", tmp_path)
    original = resolve(fixture_path("extras-app"), T312, extras=["http"], groups=["dev"])
    copied = resolve(copy, T312, extras=["http"], groups=["dev"])
    assert copied.distributions == original.distributions
    assert copied.lock_digest == original.lock_digest
