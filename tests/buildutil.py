"""Helpers for the build tests: fixture copies, builds in a subprocess, Lambda-style runs.

A build runs the way a user runs it: ``python -m hatchling build -t lambda-layer``
in a subprocess whose working directory is a private copy of a fixture project,
with the plugin found through its installed entry point. Downloads go to one
cache per test session (``HATCH_LAMBDA_CACHE_DIR``), so each wheel is fetched
once.

Artifacts are checked the way Lambda uses them: ``layer.zip`` unzipped to
``<D>/opt``, a function zip to ``<D>/var/task``, and the handler imported by an
interpreter of the runtime's version started with ``-I -S`` (no host
site-packages) whose ``sys.path`` starts with the task root and the layer's
directories, in Lambda's order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

from hatch_lambda.runtime.interpreters import host_python, lambda_sys_path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
LAYER = "lambda-layer"
FAT = "lambda-fat"
OUT = Path("dist", "lambda")  # the targets' default output directory, relative to the project
BUILD_TIMEOUT = 1800
RESULT_MARK = "@@hatch-lambda-test-result@@"


# --------------------------------------------------------------------------
# projects


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
    source = FIXTURES / name
    assert (source / "uv.lock").is_file(), f"fixture {name} has no uv.lock"
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
    found = shutil.which("uv")
    if found:
        return [found]
    return [sys.executable, "-m", "uv"]


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


# --------------------------------------------------------------------------
# builds


def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The download cache every build of this test session shares."""
    path = tmp_path_factory.getbasetemp() / "hatch-lambda-cache"
    path.mkdir(exist_ok=True)
    return path


def fresh_cache(session: Path, directory: Path) -> Path:
    """A new cache at ``directory`` holding the session's downloaded files but nothing built."""
    directory.mkdir(parents=True, exist_ok=True)
    if (session / "files").is_dir():
        shutil.copytree(session / "files", directory / "files", dirs_exist_ok=True)
    return directory


def build_env(cache: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Nothing from the outer environment may steer a build: reproducible-date
    # and hatch build variables are dropped, and Docker is pointed at a socket
    # that does not exist so installer = "auto" always builds sdists on the host.
    for name in list(env):
        if name == "SOURCE_DATE_EPOCH" or name.startswith("HATCH_BUILD_") or name.startswith("HATCH_ENV"):
            del env[name]
    env["HATCH_LAMBDA_CACHE_DIR"] = str(cache)
    env["DOCKER_HOST"] = f"unix://{cache}/no-docker-here.sock"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Build:
    project: Path
    result: subprocess.CompletedProcess

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr

    @property
    def ok(self) -> bool:
        return self.result.returncode == 0

    def out(self, *parts: str) -> Path:
        return self.project.joinpath(OUT, *parts)


def hatchling_build(
    project: Path,
    *targets: str,
    cache: Path,
    args: Iterable[str] = (),
    env: dict[str, str] | None = None,
    check: bool = True,
) -> Build:
    """``python -m hatchling build -t <target>... <args>`` in ``project``."""
    command = [sys.executable, "-m", "hatchling", "build"]
    for target in targets or (LAYER,):
        command += ["-t", target]
    command += list(args)
    result = subprocess.run(
        command,
        cwd=project,
        capture_output=True,
        text=True,
        env=build_env(cache, env),
        timeout=BUILD_TIMEOUT,
    )
    build = Build(project, result)
    if check and not build.ok:
        pytest.fail(f"{' '.join(command)} in {project} exited {result.returncode}:\n{build.output}", pytrace=False)
    return build


def assert_failed_cleanly(build: Build, *needles: str) -> None:
    """A refused build: non-zero exit, no traceback, and every needle in its output."""
    assert not build.ok, f"the build should have failed:\n{build.output}"
    assert "Traceback" not in build.output, build.output
    for needle in needles:
        assert needle in build.output, f"{needle!r} not in the build output:\n{build.output}"


# --------------------------------------------------------------------------
# artifacts


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def digests(directory: Path) -> dict[str, str]:
    """relative path -> sha256 of every file below ``directory``."""
    return {
        path.relative_to(directory).as_posix(): sha256_file(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def b64_of_hex(digest: str) -> str:
    return base64.b64encode(bytes.fromhex(digest)).decode()


def manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def zip_files(path: Path) -> set[str]:
    """Names of the regular files (not directories) in a zip."""
    return {name for name in zip_names(path) if not name.endswith("/")}


def top_level(path: Path, prefix: str = "") -> set[str]:
    """First path components below ``prefix`` of the files in a zip."""
    out = set()
    for name in zip_files(path):
        if name.startswith(prefix):
            out.add(name[len(prefix):].split("/", 1)[0])
    return out


def extract(path: Path, destination: Path) -> Path:
    """Unzip like Lambda does: every file with the mode bits stored in the zip."""
    destination.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            target = destination / info.filename
            assert destination.resolve() in target.resolve().parents or target.resolve() == destination.resolve()
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
    return destination


def elf_machines(zip_path: Path, directory: Path) -> dict[str, str]:
    """Unzip into ``directory``; relative path -> ELF machine (``EM_X86_64``...) of each ELF file."""
    from hatch_lambda.packs.elf import read_elf

    extract(zip_path, directory)
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            info = read_elf(path)
            if info is not None:
                found[path.relative_to(directory).as_posix()] = info[0]
    return found


# --------------------------------------------------------------------------
# running handlers the way Lambda does


def find_python(version: str) -> str:
    """The path of a CPython ``version`` interpreter (3.11, 3.12...) on this machine."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    found = host_python(version)
    if found:
        return found
    message = f"no python{version} interpreter on this machine to run the built artifacts with"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


BOOTSTRAP = r"""
import importlib, json, os, sys, sysconfig
paths, roots, module, event, code, attribute = json.loads(sys.argv[1])
sys.path[:0] = paths
host = {os.path.realpath(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
stdlib = {os.path.realpath(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib")}
roots = [os.path.realpath(root) for root in roots]

def under(path, directories):
    return any(path == d or path.startswith(d + os.sep) for d in directories)

namespace = {}
if module:
    result = getattr(importlib.import_module(module), attribute)(event, None)
else:
    exec(code, namespace)
    result = namespace.get("result")
leaks, loaded = [], {}
for name, mod in sorted(sys.modules.items()):
    where = getattr(mod, "__file__", None)
    if not where:
        continue
    where = os.path.realpath(where)
    if under(where, roots):
        loaded[name] = where
    elif under(where, host) or not under(where, stdlib):
        leaks.append(f"{name}: {where}")
leaks += [f"sys.path: {p}" for p in sys.path if p and under(os.path.realpath(p), host)]
print(%r + json.dumps({"result": result, "leaks": leaks, "loaded": loaded}, default=repr))
""" % RESULT_MARK


@dataclass
class LambdaRun:
    result: object
    loaded: dict[str, str]  # module -> file, for modules loaded from the artifacts
    process: subprocess.CompletedProcess


@dataclass
class LambdaRoot:
    """``D``: ``D/opt`` holds the layer, ``D/var/task`` the function."""

    root: Path
    python: str  # "3.11"

    @property
    def task(self) -> Path:
        return self.root / "var" / "task"

    @property
    def opt(self) -> Path:
        return self.root / "opt"

    @property
    def sys_path(self) -> list[str]:
        """Lambda's order: the task root, then the layer's site-packages directory, then /opt/python."""
        return lambda_sys_path(str(self.task), str(self.opt), self.python)


def lambda_root(directory: Path, python: str, *, layer: Path | None = None, function: Path | None = None) -> LambdaRoot:
    root = LambdaRoot(directory, python)
    root.task.mkdir(parents=True, exist_ok=True)
    root.opt.mkdir(parents=True, exist_ok=True)
    if layer is not None:
        extract(layer, root.opt)
    if function is not None:
        extract(function, root.task)
    return root


def run_python(
    python: str,
    paths: list[str],
    *,
    module: str | None = None,
    event: object = None,
    code: str | None = None,
    roots: list[str] | None = None,
    check: bool = True,
    environment: dict[str, str] | None = None,
    attribute: str = "handler",
) -> LambdaRun:
    """Import ``module`` and call ``handler(event, None)`` (or exec ``code``, which sets ``result``).

    The interpreter runs with ``-I -S``: no site-packages, no user site, no
    PYTHON* variables; only ``paths`` are added to ``sys.path``, in front. Any
    module loaded from outside ``roots`` and the standard library is a leak and
    fails the run.
    """
    payload = json.dumps([paths, roots if roots is not None else paths, module, event if event is not None else {}, code,
                          attribute])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC", "HOME": paths[0],
           **(environment or {})}
    process = subprocess.run(
        [find_python(python), "-I", "-S", "-B", "-c", BOOTSTRAP, payload],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    report = None
    for line in process.stdout.splitlines():
        if line.startswith(RESULT_MARK):
            report = json.loads(line[len(RESULT_MARK):])
    if not check:
        return LambdaRun(report and report["result"], report["loaded"] if report else {}, process)
    assert process.returncode == 0 and report is not None, (
        f"running {module or 'code'} with python{python} failed:\n{process.stdout}\n{process.stderr}"
    )
    assert report["leaks"] == [], f"modules came from outside the artifacts: {report['leaks']}"
    return LambdaRun(report["result"], report["loaded"], process)


def invoke(root: LambdaRoot, module: str, event: object = None, *, attribute: str = "handler",
           environment: dict[str, str] | None = None) -> LambdaRun:
    """Call ``module.<attribute>`` with the layer and function of ``root`` on sys.path."""
    return run_python(root.python, root.sys_path, module=module, event=event, roots=[str(root.root)],
                      attribute=attribute, environment=environment)


def invoke_fat(fat_zip: Path, directory: Path, python: str, module: str, event: object = None,
               check: bool = True, *, attribute: str = "handler") -> LambdaRun:
    """Unzip a fat zip alone into ``directory/var/task`` and call the handler from there only."""
    root = lambda_root(directory, python, function=fat_zip)
    return run_python(python, [str(root.task)], module=module, event=event, roots=[str(root.root)], check=check,
                      attribute=attribute)


# --------------------------------------------------------------------------
# zip structure


def local_header_extra_length(raw: bytes, info: zipfile.ZipInfo) -> int:
    """Length of the extra field in the local file header of ``info``."""
    offset = info.header_offset
    assert raw[offset:offset + 4] == b"PK\x03\x04", f"no local header for {info.filename}"
    return int.from_bytes(raw[offset + 28:offset + 30], "little")


def assert_zip_is_normalised(path: Path, *, date_time: tuple | None = None) -> None:
    """Sorted entries with their directories, 0644/0755 modes, no extra fields, no bytecode."""
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        assert archive.testzip() is None, f"{path.name} has a corrupt member"
    names = [info.filename for info in infos]
    assert names == sorted(names), f"{path.name}: entries are not sorted"
    assert len(set(names)) == len(names), f"{path.name}: duplicate entries"
    present = set(names)
    for info in infos:
        name = info.filename
        parts = name.rstrip("/").split("/")
        assert not name.startswith("/") and ".." not in parts, name
        assert "__pycache__" not in parts, name
        assert not name.endswith((".pyc", ".pyo")), name
        for depth in range(1, len(parts)):
            assert "/".join(parts[:depth]) + "/" in present, f"{path.name}: no directory entry above {name}"
        assert info.extra == b"", f"{name} has extra fields in the central directory"
        assert local_header_extra_length(raw, info) == 0, f"{name} has extra fields in its local header"
        assert info.create_system == 3, name
        mode = info.external_attr >> 16
        if info.is_dir():
            assert mode == stat.S_IFDIR | 0o755, f"{name}: {oct(mode)}"
        else:
            assert mode in (stat.S_IFREG | 0o644, stat.S_IFREG | 0o755), f"{name}: {oct(mode)}"
            assert info.compress_type in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED), name
            if info.compress_type == zipfile.ZIP_STORED:  # stored only where deflating does not help
                assert info.compress_size == info.file_size, name
        if date_time is not None:
            assert info.date_time == date_time, f"{name}: {info.date_time} != {date_time}"


# --------------------------------------------------------------------------
# hand-made distributions


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
