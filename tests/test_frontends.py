"""The ``lambda`` build hook under real frontends, and the ``hatch-lambda build`` command.

Every frontend runs in a subprocess on a private copy of a fixture; its
isolated build environment gets hatch-lambda from a wheel built from this
checkout (offered through ``UV_FIND_LINKS`` / ``PIP_FIND_LINKS``), and its
Lambda artifacts must be the very bytes ``python -m hatchling build -t ...``
writes for the same project.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from hatch_lambda.nesting import NESTED_ENV

from helpers.builds import (
    BUILD_TIMEOUT,
    Build,
    assert_failed_cleanly,
    build_env,
    digests,
    elf_machines,
    hatchling_build,
    manifest,
    zip_files,
)
from helpers.projects import FAT, LAYER, OUT, copy_fixture, edit_pyproject, plugin_wheelhouse, uv_command

pytestmark = pytest.mark.network

FIXTURE = "markers-app"  # pure-Python wheels only: fast, and its CPU shows in what the markers pick
HOOK_TABLE = "[tool.hatch.build.targets.wheel.hooks.lambda]"
WHEEL = "markers_app-0.1.0-py3-none-any.whl"
SDIST = "markers_app-0.1.0.tar.gz"


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    return plugin_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))


@pytest.fixture(scope="module")
def direct(tmp_path_factory, cache) -> dict[str, str]:
    """sha256 of every file ``python -m hatchling build -t lambda-layer -t lambda-fat`` writes."""
    project = copy_fixture(FIXTURE, tmp_path_factory.mktemp("direct"))
    return digests(hatchling_build(project, LAYER, FAT, cache=cache).out())


def set_hook(project: Path, table: dict | None, where: str = "wheel") -> None:
    """Write (or with ``None`` remove) the hook's table ``[tool.hatch.build.targets.<where>.hooks.lambda]``."""

    def change(data: dict) -> None:
        targets = data.setdefault("tool", {}).setdefault("hatch", {}).setdefault("build", {}).setdefault("targets", {})
        hooks = targets.setdefault(where, {}).setdefault("hooks", {})
        if table is None:
            hooks.pop("lambda", None)
        else:
            hooks["lambda"] = table

    edit_pyproject(project, change)


def hooked(tmp_path: Path, name: str = FIXTURE, **table) -> Path:
    project = copy_fixture(name, tmp_path)
    set_hook(project, table or {"targets": [LAYER, FAT]})
    return project


def frontend(command: list[str], project: Path, cache: Path, wheelhouse: Path, env: dict | None = None) -> Build:
    environ = build_env(cache, {"UV_FIND_LINKS": str(wheelhouse), "PIP_FIND_LINKS": str(wheelhouse), **(env or {})})
    result = subprocess.run(command, cwd=project, capture_output=True, text=True, env=environ, timeout=BUILD_TIMEOUT)
    return Build(project, result)


def dist_names(project: Path) -> list[str]:
    dist = project / "dist"
    return sorted(p.name for p in dist.iterdir() if not p.name.startswith(".")) if dist.is_dir() else []


def pypa_build() -> list[str]:
    command = [sys.executable, "-m", "build", "--wheel"]
    return [*command, "--installer", "uv"] if shutil.which("uv") else command


def hatch(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    found = shutil.which("hatch")
    command = [found] if found else [sys.executable, "-m", "hatch"]
    return command, {"HATCH_DATA_DIR": str(tmp_path / "hatch-data"), "HATCH_CACHE_DIR": str(tmp_path / "hatch-cache")}


# --------------------------------------------------------------------------
# the hook, under each frontend


def frontend_command(name: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    if name == "uv build":
        return [*uv_command(), "build"], {}
    if name == "uv build --wheel":
        return [*uv_command(), "build", "--wheel"], {}
    if name == "python -m build --wheel":
        return pypa_build(), {}
    if name == "python -m build":
        return [arg for arg in pypa_build() if arg != "--wheel"], {}
    if name == "uvx hatchling build":
        return [*uv_command(), "tool", "run", "--from", "hatchling", "--with", "hatch-lambda",
                "hatchling", "build", "-t", LAYER, "-t", FAT], {}
    command, env = hatch(tmp_path)
    return [*command, "build"], env


@pytest.mark.parametrize(("name", "packages"), [
    ("uv build", [SDIST, WHEEL]),
    ("uv build --wheel", [WHEEL]),
    ("python -m build --wheel", [WHEEL]),
    ("python -m build", [SDIST, WHEEL]),
    ("uvx hatchling build", []),  # the targets themselves, no wheel
    ("hatch build", [SDIST, WHEEL]),
])
def test_frontend_writes_the_wheel_and_the_same_lambda_artifacts(name, packages, cache, wheelhouse, direct, tmp_path):
    command, env = frontend_command(name, tmp_path)
    project = hooked(tmp_path)
    build = frontend(command, project, cache, wheelhouse, env)
    assert build.ok, build.output
    assert "Traceback" not in build.output
    assert dist_names(project) == sorted([*packages, "lambda"])
    assert digests(project / OUT) == direct, build.output


def test_hatch_takes_the_runtime_from_the_environment(cache, wheelhouse, tmp_path):
    command, env = hatch(tmp_path)
    project = copy_fixture(FIXTURE, tmp_path)
    build = frontend([*command, "build", "-t", LAYER, "dist/lambda/py3.11-arm64"], project, cache, wheelhouse,
                     {**env, "HATCH_LAMBDA_ARCH": "arm64"})
    assert build.ok, build.output
    section = manifest(project / OUT / "py3.11-arm64")["targets"][LAYER]
    assert (section["python"], section["arch"]) == ("3.11", "arm64")
    assert "idna" in {d["name"] for d in section["distributions"]}


def test_uv_build_makes_the_wheel_from_the_sdist_which_carries_uv_lock(cache, wheelhouse, direct, tmp_path):
    project = hooked(tmp_path)
    build = frontend([*uv_command(), "build"], project, cache, wheelhouse)
    assert build.ok, build.output
    assert "Building wheel from source distribution" in build.output
    with tarfile.open(project / "dist" / SDIST) as sdist:
        names = sdist.getnames()
    assert "markers_app-0.1.0/uv.lock" in names and "markers_app-0.1.0/src/markers_app/handler.py" in names
    assert digests(project / OUT) == direct


def test_hook_off_gives_only_the_wheel(cache, wheelhouse, tmp_path):
    plain = copy_fixture(FIXTURE, tmp_path / "plain")
    build = frontend([*uv_command(), "build", "--wheel"], plain, cache, wheelhouse)
    assert build.ok, build.output
    assert dist_names(plain) == [WHEEL]

    # enable-by-default = false: off unless HATCH_BUILD_HOOK_ENABLE_LAMBDA is set, for a one-off build
    project = hooked(tmp_path / "optional", **{"enable-by-default": False})
    build = frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse)
    assert build.ok, build.output
    assert dist_names(project) == [WHEEL]
    build = frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse,
                     {"HATCH_BUILD_HOOK_ENABLE_LAMBDA": "1"})
    assert build.ok, build.output
    assert sorted(p.name for p in (project / OUT).iterdir()) == ["layer.zip", "manifest.json", "markers-app.zip"]


def test_hook_default_target_is_the_layer_and_the_environment_picks_the_cpu(cache, wheelhouse, tmp_path):
    project = copy_fixture(FIXTURE, tmp_path)
    set_hook(project, {})
    build = frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse, {"HATCH_LAMBDA_ARCH": "arm64"})
    assert build.ok, build.output
    data = manifest(project / OUT)
    assert list(data["targets"]) == [LAYER]
    section = data["targets"][LAYER]
    assert (section["python"], section["arch"]) == ("3.11", "arm64")
    # markers-app needs idna on aarch64 and certifi on x86_64
    names = {d["name"] for d in section["distributions"]}
    assert "idna" in names and "certifi" not in names


def test_editable_install_does_not_run_the_hook(cache, wheelhouse, tmp_path):
    project = hooked(tmp_path)
    venv = tmp_path / "venv"
    made = subprocess.run([*uv_command(), "venv", str(venv)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    build = frontend([*uv_command(), "pip", "install", "--python", str(venv), "-e", "."], project, cache, wheelhouse)
    assert build.ok, build.output
    assert not (project / "dist").exists()


def test_clean_removes_the_hooked_targets_artifacts_with_the_wheel(cache, tmp_path):
    project = hooked(tmp_path)
    hatchling_build(project, "wheel", cache=cache)
    assert sorted(p.name for p in (project / OUT).iterdir()) == [
        "layer.zip", "manifest.json", "markers-app-fat.zip", "markers-app.zip"]
    (project / OUT / "notes.txt").write_text("not ours\n")
    hatchling_build(project, "wheel", cache=cache, args=["--clean-only"])
    assert dist_names(project) == ["lambda"]
    assert sorted(p.name for p in (project / OUT).iterdir()) == ["notes.txt"]


# --------------------------------------------------------------------------
# errors of the hook


def test_unknown_target_in_the_hook_table_fails_before_the_wheel_and_keeps_earlier_artifacts(
    cache, wheelhouse, tmp_path
):
    project = hooked(tmp_path)
    assert frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse).ok
    before = digests(project / "dist")
    set_hook(project, {"targets": [LAYER, "lambda-thin"]})
    (project / "dist" / WHEEL).unlink()
    build = frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse)
    assert_failed_cleanly(build, "unknown target 'lambda-thin'", HOOK_TABLE, "pyproject.toml",
                          "fix: use 'lambda-layer' and/or 'lambda-fat'")
    assert not (project / "dist" / WHEEL).exists()  # refused before the wheel was written
    assert digests(project / "dist") == {k: v for k, v in before.items() if k != WHEEL}


@pytest.mark.parametrize(("table", "needles"), [
    ({"targets": [LAYER], "target": [FAT]}, ["unknown key 'target'", "valid keys: targets"]),
    ({"targets": []}, ["targets in", "must be a non-empty list of strings, not []",
                       'fix: e.g. targets = ["lambda-layer", "lambda-fat"]']),
    ({"targets": LAYER}, ["must be a non-empty list of strings, not 'lambda-layer'"]),
])
def test_bad_hook_table_is_refused_and_keeps_earlier_artifacts(cache, wheelhouse, tmp_path, table, needles):
    project = hooked(tmp_path)
    assert frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse).ok
    before = digests(project / OUT)
    set_hook(project, table)
    build = frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse)
    assert_failed_cleanly(build, HOOK_TABLE, "pyproject.toml", *needles)
    assert digests(project / OUT) == before


def test_hook_table_for_every_target_acts_on_the_wheel_only(cache, tmp_path):
    project = copy_fixture(FIXTURE, tmp_path)

    def global_hook(targets: list[str]):
        def change(data: dict) -> None:
            data["tool"]["hatch"]["build"]["hooks"] = {"lambda": {"targets": targets}}
        return change

    edit_pyproject(project, global_hook([FAT]))
    hatchling_build(project, "sdist", "wheel", cache=cache)
    assert dist_names(project) == sorted([SDIST, WHEEL, "lambda"])
    assert sorted(p.name for p in (project / OUT).iterdir()) == ["manifest.json", "markers-app-fat.zip"]
    before = digests(project / OUT)
    edit_pyproject(project, global_hook(["lambda-nope"]))
    build = hatchling_build(project, "wheel", cache=cache, check=False)
    assert_failed_cleanly(build, "unknown target 'lambda-nope' in targets of [tool.hatch.build.hooks.lambda]")
    assert digests(project / OUT) == before


def test_sdist_without_uv_lock_is_refused_with_the_fix(cache, wheelhouse, tmp_path):
    project = hooked(tmp_path)
    edit_pyproject(project, lambda data: data["tool"]["hatch"]["build"]["targets"].setdefault(
        "sdist", {}).update({"exclude": ["uv.lock"]}))
    # the wheel straight from the project finds the lock
    build = frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse)
    assert build.ok, build.output
    before = digests(project / OUT)
    assert "layer.zip" in before
    build = frontend([*uv_command(), "build"], project, cache, wheelhouse)
    assert_failed_cleanly(build, "sdist of markers-app that holds no uv.lock", "include uv.lock in the sdist",
                          "uv build --wheel")
    assert digests(project / OUT) == before


def test_bad_arch_in_the_environment_names_the_variable(cache, wheelhouse, tmp_path):
    project = hooked(tmp_path)
    assert frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse).ok
    before = digests(project / OUT)
    build = frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse, {"HATCH_LAMBDA_ARCH": "sparc"})
    assert_failed_cleanly(build, "unknown Lambda arch 'sparc'", "HATCH_LAMBDA_ARCH", "fix: use 'x86_64' or 'arm64'")
    assert digests(project / OUT) == before


# --------------------------------------------------------------------------
# no recursion


def test_wheel_builds_inside_a_lambda_build_do_not_run_the_hook(cache, wheelhouse, tmp_path):
    """The workspace member is built into a wheel by the root's Lambda build; the member
    has the hook enabled with a table that fails whenever the hook runs."""
    project = hooked(tmp_path, "workspace-app", targets=[LAYER])
    member = project / "packages" / "wsmember"
    edit_pyproject(member, lambda data: data["build-system"].update(requires=["hatchling", "hatch-lambda"]))
    set_hook(member, {"targets": ["lambda-nope"]})

    # the member's own wheel build does run its hook, and fails ...
    command = [*uv_command(), "build", "--wheel", "--out-dir", "dist"]  # not the workspace's dist/
    alone = frontend(command, member, cache, wheelhouse)
    assert_failed_cleanly(alone, "unknown target 'lambda-nope'")
    # ... unless it runs inside a Lambda build
    nested = frontend(command, member, cache, wheelhouse, {NESTED_ENV: "1"})
    assert nested.ok, nested.output
    assert dist_names(member) == ["wsmember-0.2.0-py3-none-any.whl"]
    shutil.rmtree(member / "dist")

    build = frontend([*uv_command(), "build", "--wheel"], project, cache, wheelhouse)
    assert build.ok, build.output
    assert "python/wsmember/__init__.py" in zip_files(project / OUT / "layer.zip")
    assert not (member / "dist").exists()


# --------------------------------------------------------------------------
# hatch-lambda build


def cli(args: list[str], cwd: Path, cache: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hatch_lambda", "build", *args], cwd=cwd, capture_output=True,
                          text=True, env=build_env(cache, env), timeout=BUILD_TIMEOUT)


MACHINES = {"x86_64": "EM_X86_64", "arm64": "EM_AARCH64"}


def test_build_command_matrix_gives_one_directory_per_runtime(cache, tmp_path):
    project = copy_fixture("native-app", tmp_path)
    result = cli(["native-app", "--python", "3.11", "--python", "3.12", "--arch", "x86_64", "--arch", "arm64",
                  "-t", LAYER, "-t", FAT], tmp_path, cache)
    assert result.returncode == 0, result.stdout + result.stderr
    out = project / OUT
    combinations = {f"py{p}-{a}": (p, a) for p in ("3.11", "3.12") for a in ("x86_64", "arm64")}
    assert sorted(p.name for p in out.iterdir()) == sorted(combinations)
    for label, (python, arch) in combinations.items():
        directory = out / label
        assert sorted(p.name for p in directory.iterdir()) == [
            "layer.zip", "manifest.json", "native-app-fat.zip", "native-app.zip"]
        for kind in (LAYER, FAT):
            section = manifest(directory)["targets"][kind]
            assert (section["python"], section["arch"]) == (python, arch)
        for name in ("layer.zip", "native-app-fat.zip"):
            machines = elf_machines(directory / name, tmp_path / "unzipped" / label / name)
            assert machines and set(machines.values()) == {MACHINES[arch]}, machines
            tag = f"cpython-{python.replace('.', '')}"
            assert all(tag in path for path in machines if "orjson" in path), machines

    # the table's runtime (3.11, x86_64), alone and without -d, is the plain hatchling build
    direct = hatchling_build(copy_fixture("native-app", tmp_path / "direct"), LAYER, FAT, cache=cache)
    assert digests(out / "py3.11-x86_64") == digests(direct.out())
    single = copy_fixture("native-app", tmp_path / "single")
    result = cli(["-t", LAYER, "-t", FAT], single, cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert digests(single / OUT) == digests(direct.out())


def test_build_command_directory_option(cache, tmp_path):
    project = copy_fixture(FIXTURE, tmp_path)
    # aarch64 is arm64: two runtimes, not three
    result = cli([str(project), "--arch", "arm64", "--arch", "aarch64", "--arch", "x86_64", "-d", "out"],
                 tmp_path, cache)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["py3.11-arm64", "py3.11-x86_64"]
    assert not (project / "dist").exists()


@pytest.mark.parametrize(("args", "needles"), [
    (["--python", "3.8"], ["--python 3.8: python 3.8 is a retired Lambda runtime", "fix: use one of 3.10"]),
    (["--python", "3.12", "--python", "4.0"], ["--python 4.0: unknown Lambda python version '4.0'"]),
    (["--arch", "sparc"], ["--arch sparc: unknown Lambda arch 'sparc'", "fix: use 'x86_64' or 'arm64'"]),
    (["-t", "lambda-thin"], ["invalid choice: 'lambda-thin'", "lambda-layer", "lambda-fat"]),
    (["nowhere"], ["no pyproject.toml in", "nowhere", "fix: pass the project directory"]),
])
def test_build_command_errors_exit_2_and_touch_nothing(cache, tmp_path, args, needles):
    project = copy_fixture(FIXTURE, tmp_path)
    assert cli([], project, cache).returncode == 0
    before = digests(project / OUT)
    result = cli(args, project, cache)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output, output
    assert digests(project / OUT) == before


def test_build_command_reports_build_errors_with_status_2(cache, tmp_path):
    project = copy_fixture(FIXTURE, tmp_path)
    assert cli([], project, cache).returncode == 0
    before = digests(project / OUT)
    # a valid Lambda runtime that the project's requires-python (>= 3.11) rules out
    result = cli(["--python", "3.10"], project, cache)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "3.10" in output
    assert digests(project / OUT) == before
