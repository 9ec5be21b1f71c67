"""Builds in a subprocess, the way a user runs them, and what they leave: artifacts, digests, zip structure.

A build runs the way a user runs it: ``python -m hatchling build -t lambda-layer``
in a subprocess whose working directory is a private copy of a fixture project,
with the plugin found through its installed entry point. Downloads go to one
cache per test session (``HATCH_LAMBDA_CACHE_DIR``), so each wheel is fetched
once.
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
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.projects import LAYER, OUT

BUILD_TIMEOUT = 1800


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


def build_env(cache: Path, extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment for a build, with its cache and no Docker; ``extra`` on top (None: unset)."""
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
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
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
    env: dict[str, str | None] | None = None,
    check: bool = True,
    python: str = sys.executable,
) -> Build:
    """``python -m hatchling build -t <target>... <args>`` in ``project`` (``python``: this one's by default)."""
    command = [python, "-m", "hatchling", "build"]
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


def zip_sources(path: Path) -> set[str]:
    """Names of the regular files in a zip, less the bytecode the build compiled (``__pycache__``, ``.pyc``)."""
    return {name for name in zip_files(path) if "__pycache__/" not in name and not name.endswith(".pyc")}


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


def local_header_extra_length(raw: bytes, info: zipfile.ZipInfo) -> int:
    """Length of the extra field in the local file header of ``info``."""
    offset = info.header_offset
    assert raw[offset:offset + 4] == b"PK\x03\x04", f"no local header for {info.filename}"
    return int.from_bytes(raw[offset + 28:offset + 30], "little")


def assert_zip_is_normalised(path: Path, *, date_time: tuple | None = None) -> None:
    """Sorted entries with their directories, 0644/0755 modes, no extra fields, and no bytecode but the build's own
    (unchecked-hash ``.pyc`` files, PEP 552)."""
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        assert archive.testzip() is None, f"{path.name} has a corrupt member"
        pyc_flags = {i.filename: int.from_bytes(archive.read(i)[4:8], "little") for i in infos
                     if i.filename.endswith(".pyc")}
    names = [info.filename for info in infos]
    assert names == sorted(names), f"{path.name}: entries are not sorted"
    assert len(set(names)) == len(names), f"{path.name}: duplicate entries"
    present = set(names)
    for info in infos:
        name = info.filename
        parts = name.rstrip("/").split("/")
        assert not name.startswith("/") and ".." not in parts, name
        assert not name.endswith(".pyo"), name
        if name.endswith(".pyc"):
            assert pyc_flags[name] == 0b01, f"{name} is not an unchecked-hash .pyc"
        elif "__pycache__" in parts and not info.is_dir():
            raise AssertionError(f"{name} is in a __pycache__ directory but is no .pyc")
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


def assert_untouched(project: Path, before: dict[str, str], entries: list[str]) -> None:
    out = project / OUT
    assert digests(out) == before
    # no scratch directory or half-written zip left behind either
    assert sorted(p.name for p in out.iterdir()) == entries


def rebuild_fails(project: Path, cache: Path, *targets: str, needles=(), env=None) -> Build:
    """A build of a project built before fails with exit 2 and one message, its earlier artifacts untouched."""
    out = project / OUT
    before = digests(out)
    entries = sorted(p.name for p in out.iterdir())
    assert {"layer.zip", "manifest.json"} <= set(before)
    build = hatchling_build(project, *targets, cache=cache, check=False, env=env)
    assert_failed_cleanly(build, "hatch-lambda: ", *needles)
    assert build.result.returncode == 2
    assert_untouched(project, before, entries)
    return build
