"""Wheels built from sources with pypa/build: workspace members, path and directory sources, sdists, git checkouts.

Built on this machine, by a CPython of the target's version when one is found
(else by the one running the build); a wheel built from an sdist or a git checkout is accepted
only when it is pure Python (a native one must be built in the Lambda image), and
is cached (``built/<sdist sha256>``, ``git/<key>``) since its source never changes.
A local tree (workspace member, path or directory source) is built from a copy
in the build's scratch directory (see :mod:`hatch_lambda.lockfile.trees`), never
where it is; every built wheel must be the distribution (and the version, when
the lock records one) uv.lock names.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from hatch_lambda.cache.entry import WHEEL_META, Entry, read_wheel, store_wheel
from hatch_lambda.cache.store import inside
from hatch_lambda.context import Log
from hatch_lambda.errors import LambdaBuildError, redact
from hatch_lambda.fetch.git import built_wheel, parse_git_source
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.lockfile.trees import copy_source
from hatch_lambda.nesting import nested_environment
from hatch_lambda.runtime.interpreters import find_python


@dataclass(frozen=True)
class Wheel:
    """A wheel ready to unpack, and how it came to be."""

    dist: Distribution
    path: Path
    how: str


def is_pure(wheel_name: str) -> bool:
    tags = parse_wheel_filename(wheel_name)[3]
    return all(tag.abi == "none" and tag.platform == "any" for tag in tags)


def builder(python: str | None) -> tuple[list[str], str]:
    """How a wheel is built, and the "X.Y" of the Python that builds it: with ``uv build`` by a CPython of the
    target's version ``python`` when that is not the one running this build and both are found (see
    :func:`~hatch_lambda.runtime.interpreters.find_python`), else with pypa/build by the one running it."""
    running = "%d.%d" % sys.version_info[:2]
    uv = shutil.which("uv")
    if python is not None and python != running and uv:
        found = find_python(python)
        if found is not None:
            return [uv, "build", "--wheel", "--python", found.executable, "--out-dir"], python
    command = [sys.executable, "-m", "build", "--wheel", "--outdir"]
    if uv:
        command[4:4] = ["--installer", "uv"]
    return command, running


def build_wheel(source_dir: Path, out_dir: Path, label: str, log: Log, python: str | None = None,
                environment: dict[str, str] | None = None) -> Path:
    """Build a regular (not editable) wheel from a source tree, by a CPython of ``python`` when one is found;
    ``environment`` replaces this process's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start, version = builder(python)
    command = [*start, str(out_dir), str(source_dir)]
    log(redact(f"building {label} into a wheel" + (f" with python{version}" if python is not None else "")))
    # nested_environment(): the lambda build hook must not run again inside this build.
    result = subprocess.run(command, capture_output=True, text=True, env=nested_environment(environment or os.environ))
    if result.returncode != 0:
        tail = "\n    ".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise LambdaBuildError(f"building a wheel of {label} failed:\n    {tail}")
    wheels = sorted(out_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise LambdaBuildError(f"building {label} produced {len(wheels)} wheels, expected one")
    return wheels[0]


#: What reading a damaged archive raises: not an archive, a bad member (tarfile's data filter too), a cut stream.
DAMAGED = (tarfile.TarError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, gzip.BadGzipFile,
           lzma.LZMAError, NotImplementedError)


def unpack_sdist(path: Path, into: Path, dist: Distribution) -> Path:
    """Unpack an sdist (.tar.gz or .zip) safely; the directory holding pyproject/setup.py."""
    try:
        return _unpack_sdist(path, into)
    except tarfile.FilterError as exc:  # a link or path leaving the archive's directory
        raise LambdaBuildError(f"{dist.pin}: {path.name} holds an unsafe member: {exc}; refusing to unpack it",
                               f"report it to the {dist.name} maintainers, or leave the package out with "
                               "exclude-packages") from None
    except DAMAGED as exc:
        where = f"the file {dist.source}" if dist.source_kind == "path" else f"{dist.name}'s sdist"
        raise LambdaBuildError(
            f"{dist.pin}: {path.name} is not an sdist: it is not a readable .tar.gz or .zip archive "
            f"({str(exc).splitlines()[0].rstrip(':') if str(exc) else type(exc).__name__})",
            f"replace {where} with a real sdist and run `uv lock`, or leave the package out with exclude-packages",
        ) from None


def _unpack_sdist(path: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith("/") or ".." in PurePosixPath(name).parts:
                    raise LambdaBuildError(f"sdist {path.name} holds an unsafe path {name!r}")
            archive.extractall(into)
    else:
        with tarfile.open(path) as archive:
            archive.extractall(into, filter="data")
    children = [p for p in into.iterdir() if p.is_dir()]
    return children[0] if len(children) == 1 else into


def local_build(dist: Distribution, source: Path, work: Path, log: Log, python: str | None = None,
                keep_out: tuple[Path, ...] = ()) -> Wheel:
    """Build the local tree ``source`` of ``dist`` from a copy in ``work`` (``keep_out``, the build's output
    and cache, left out of it), so that the build backend writes nothing into the user's tree."""
    label = f"{dist.pin} ({dist.source_kind} {dist.source})"
    (work / "sources").mkdir(parents=True, exist_ok=True)
    into = Path(tempfile.mkdtemp(prefix=f"{dist.name}-", dir=work / "sources"))
    try:
        copy = copy_source(source, into, label, keep_out=keep_out)
        notes = [copy.history] if copy.history else []
        notes += [f"link {link} left out of the copy (it points outside {source}, not to a file)"
                  for link in copy.left_out]
        for note in notes:
            log(redact(f"  {dist.name}: {note}"))
        try:
            wheel = build_wheel(copy.tree, work / "wheels" / dist.name, label, log, python, copy.environment)
        except LambdaBuildError as exc:
            if not copy.left_out:
                raise
            one = len(copy.left_out) == 1
            raise LambdaBuildError(exc.problem + copy.failure_note(),
                                   f"make {'that link' if one else 'those links'} point inside {source}, or put "
                                   f"what {'it points' if one else 'they point'} to there") from None
    finally:  # the copy is not needed once its wheel is built
        shutil.rmtree(into, ignore_errors=True)
    refuse_other(dist, wheel, source)
    return Wheel(dist, wheel, f"built from {dist.source}")


def host_build(dist: Distribution, source: Path, work: Path, cache: Path, log: Log,
               python: str | None = None, keep_out: tuple[Path, ...] = ()) -> Wheel:
    """Build ``dist`` on this machine (by a CPython of the target's ``python`` when one is found); accepted only
    if the result is pure Python. A local tree is built from a copy (see :func:`local_build`)."""
    if dist.is_local:
        return local_build(dist, source, work, log, python, keep_out)
    # An sdist: built once per digest (and subdirectory) and Python that builds it, and cached, since the sdist
    # never changes.
    sub = dist.subdirectory
    variant = hashlib.sha256(f"{sub or ''}\0python{builder(python)[1]}".encode()).hexdigest()[:16]
    entry = Entry(cache, "built", f"{dist.sha256}-{variant}", WHEEL_META)
    cached = entry.read(read_wheel)
    if cached is None:
        unpacked = unpack_sdist(source, work / "sdists" / dist.name, dist)
        tree = unpacked
        if sub:
            tree = unpacked / sub
            if not inside(unpacked, tree) or not tree.is_dir():
                raise LambdaBuildError(f"{dist.pin}: {source.name} has no directory {sub!r} (the lock's subdirectory)",
                                       "run `uv lock`")
        built = build_wheel(tree, work / "wheels" / dist.name, f"{dist.pin} (sdist)", log, python)
        _refuse_native(dist, built)
        refuse_other(dist, built, source)
        cached = entry.get(read_wheel, store_wheel(built))  # a killed build never leaves half a wheel here
    _refuse_native(dist, cached)
    refuse_other(dist, cached, source)
    return Wheel(dist, cached, "sdist built on host")


def refuse_other(dist: Distribution, wheel: Path, source: Path) -> None:
    """A wheel built from an sdist (here or in the image) or a local tree must be the distribution and version
    the lock names (an sdist's archive may have any name; a local tree's version is checked when the lock
    records one, as uv records none for a dynamic version)."""
    name, version, _, _ = parse_wheel_filename(wheel.name)
    if canonicalize_name(name) != dist.name or (dist.version and version != Version(dist.version)):
        fix = ("the file is not the release uv.lock names: run `uv lock` again and review the change"
               if not dist.is_local else f"{source} changed since uv.lock was written: run `uv lock`")
        raise LambdaBuildError(
            f"{dist.pin}: building {source.name} gave {wheel.name}, which is {name} {version}, "
            f"not {dist.name} {dist.version}".rstrip(), fix)


def _refuse_native(dist: Distribution, wheel: Path) -> None:
    if not is_pure(wheel.name):
        raise LambdaBuildError(
            f"{dist.pin} has only an sdist, and building it here gave {wheel.name}, which is not pure "
            f"Python, so it may not run on Lambda",
            'set installer = "docker" (or "auto" with Docker running) so it is built inside the Lambda image',
        )


def git_build(dist: Distribution, work: Path, cache: Path, log: Log) -> Wheel:
    """The wheel of a git source: the locked commit, built on this machine (pure Python only)."""
    source = parse_git_source(dist.source, where=f"uv.lock entry {dist.pin}")
    wheel = built_wheel(source, dist.pin, cache, work, lambda tree, out, label: build_wheel(tree, out, label, log), log)
    if not is_pure(wheel.name):
        raise LambdaBuildError(
            f"{dist.pin} comes from git ({source.label}), and building it here gave {wheel.name}, which is not "
            "pure Python, so it may not run on Lambda",
            f"publish a manylinux wheel of {dist.name} to an index you can use, or build it in the Lambda image "
            "yourself and depend on the wheel as a path source",
        )
    return Wheel(dist, wheel, f"built from git {source.label}")
