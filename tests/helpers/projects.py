"""Test projects: the fixtures, private copies of them, hand-written locks and wheels, and the commands run on them."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
import tomli_w

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
LAYER = "lambda-layer"
FAT = "lambda-fat"
OUT = Path("dist", "lambda")  # the targets' default output directory, relative to the project


def fixture_path(name: str) -> Path:
    path = FIXTURES / name
    assert (path / "uv.lock").is_file(), f"fixture {name} has no uv.lock"
    return path


#: What fixtures/native-app's handler returns for the event {}.
NATIVE_EXPECTED = {
    "ok": True,
    "yaml_libyaml": True,
    "yaml": {"greeting": "hello <world>", "n": 3},
    "html": "hello &lt;world&gt;",
    "markupsafe_speedups": True,
    "json": '{"greeting":"hello <world>","n":3}',
}


def copy_fixture(name: str, destination: Path) -> Path:
    """A private copy of ``fixtures/<name>`` at ``destination/<name>``, without build output or bytecode."""
    source = fixture_path(name)
    target = destination / name
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "dist", ".venv", "build"),
    )
    # A repository root: the lock search stops here, never above the copy.
    (target / ".git").mkdir(exist_ok=True)
    return target


def read_pyproject(project: Path) -> dict:
    return tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))


def edit_pyproject(project: Path, change: Callable[[dict], None]) -> dict:
    """Load pyproject.toml, let ``change`` edit the dict in place, write it back."""
    data = read_pyproject(project)
    change(data)
    (project / "pyproject.toml").write_text(tomli_w.dumps(data), encoding="utf-8")
    return data


def target_table(data: dict, kind: str = LAYER) -> dict:
    """``[tool.hatch.build.targets.<kind>]`` of a loaded pyproject, created when missing."""
    targets = data.setdefault("tool", {}).setdefault("hatch", {}).setdefault("build", {}).setdefault("targets", {})
    return targets.setdefault(kind, {})


def configure(project: Path, kind: str = LAYER, **keys) -> dict:
    """Set keys (underscores become dashes) in a target's table; ``None`` removes a key."""

    def change(data: dict) -> None:
        table = target_table(data, kind)
        for key, value in keys.items():
            key = key.replace("_", "-")
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value

    return edit_pyproject(project, change)


def uv_command() -> list[str]:
    """How to run uv: the executable on PATH, else the ``uv`` Python package."""
    found = shutil.which("uv")
    if found:
        return [found]
    probe = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "uv"]
    pytest.fail("uv is a test dependency (pip install uv) but neither `uv` nor `python -m uv` works")


def uv_lock(project: Path) -> None:
    result = subprocess.run([*uv_command(), "lock"], cwd=project, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"uv lock failed in {project}:\n{result.stdout}\n{result.stderr}"


def plugin_wheelhouse(directory: Path) -> Path:
    """``directory`` holding one freshly built hatch-lambda wheel, to offer to isolated build
    environments through ``PIP_FIND_LINKS`` / ``UV_FIND_LINKS``."""
    command = [sys.executable, "-m", "build", "--wheel", "--outdir", str(directory), str(ROOT)]
    if shutil.which("uv"):
        command[4:4] = ["--installer", "uv"]
    made = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stdout + made.stderr
    assert len(list(directory.glob("hatch_lambda-*.whl"))) == 1
    return directory


def write_project(directory: Path, lock: str, *, name: str = "app", pyproject: str | None = None) -> Path:
    """A project directory with a hand-written ``uv.lock`` (dedented) and a pyproject.toml."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".git").mkdir(exist_ok=True)
    if pyproject is None:
        pyproject = f"""
            [project]
            name = "{name}"
            version = "0.1.0"
            requires-python = ">=3.11"
        """
    (directory / "pyproject.toml").write_text(textwrap.dedent(pyproject).lstrip(), encoding="utf-8")
    (directory / "uv.lock").write_text(textwrap.dedent(lock).lstrip(), encoding="utf-8")
    return directory


def sha(seed: str) -> str:
    """A stable, distinct 64-hex digest for hand-written lock entries."""
    import hashlib

    return hashlib.sha256(seed.encode()).hexdigest()


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python -m hatch_lambda ...`` in a subprocess; ``env``: variables set on top of this one's."""
    return subprocess.run(
        [sys.executable, "-m", "hatch_lambda", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        timeout=120,
    )


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    files: dict[str, bytes],
    *,
    tag: str = "py3-none-any",
    raw_entries: Iterable[zipfile.ZipInfo | tuple[zipfile.ZipInfo, bytes]] = (),
) -> Path:
    """A wheel with ``files`` (path -> bytes), its dist-info, and any ``raw_entries`` as given."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    metadata = {
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: hatch-lambda-tests\nRoot-Is-Purelib: "
            f"{'true' if tag.endswith('none-any') else 'false'}\nTag: {tag}\n"
        ).encode(),
    }
    contents = {**files, **metadata}
    record = []
    for path, data in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    contents[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for raw in raw_entries:
            info, data = raw if isinstance(raw, tuple) else (raw, b"")
            archive.writestr(info, data)
        for member, data in contents.items():
            archive.writestr(member, data)
    return path


def local_project(directory: Path, name: str, dependencies: dict[str, str], *, python: str = "3.11",
                  layer: dict | None = None) -> Path:
    """A project whose dependencies are local files (path sources), locked with ``uv lock``.

    ``dependencies`` maps a distribution name to its file, relative to the project.
    """
    package = name.replace("-", "_")
    (directory / "src" / package).mkdir(parents=True, exist_ok=True)
    (directory / ".git").mkdir(exist_ok=True)
    (directory / "src" / package / "__init__.py").write_text("")
    (directory / "src" / package / "handler.py").write_text(
        "def handler(event, context):\n    return {'ok': True}\n"
    )
    data = {
        "build-system": {"requires": ["hatchling", "hatch-lambda"], "build-backend": "hatchling.build"},
        "project": {
            "name": name,
            "version": "0.1.0",
            "requires-python": ">=3.11",
            "dependencies": sorted(dependencies),
        },
        "tool": {
            "uv": {"sources": {dep: {"path": path} for dep, path in sorted(dependencies.items())}},
            "hatch": {
                "build": {
                    "targets": {
                        "wheel": {"packages": [f"src/{package}"]},
                        "lambda-layer": {"python": python, **(layer or {})},
                    }
                }
            },
        },
    }
    (directory / "pyproject.toml").write_text(tomli_w.dumps(data), encoding="utf-8")
    uv_lock(directory)
    return directory


def pip_download(requirement: str, directory: Path, *options: str, timeout: int = 600) -> None:
    """``pip download --no-deps --only-binary=:all:`` from the package index; skipped without one, failed under CI."""
    from helpers.dockerutil import in_ci

    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *options,
         requirement, "-d", str(directory)],
        capture_output=True, text=True, timeout=timeout,
    )
    if download.returncode != 0:
        message = f"cannot download {requirement} from the package index: {download.stderr[-2000:]}"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def git(repo: Path, *args: str) -> str:
    """``git ARGS`` in ``repo`` with a fixed author and no system configuration; its output."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1"}
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env, check=True)
    return result.stdout.strip()
