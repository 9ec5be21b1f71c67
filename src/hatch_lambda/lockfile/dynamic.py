"""Metadata of a local project whose dependencies are dynamic, read through its build backend.

A project that lists ``dependencies`` or ``optional-dependencies`` in
``[project] dynamic`` has them computed by its build backend (a requirements
file, a plugin). uv reads them through the PEP 517 hook
``prepare_metadata_for_build_wheel`` to judge whether ``uv.lock`` is fresh; so
does this module, in an isolated build environment (pypa/build), when the
project's source tree is there: on a copy of the tree in the cache (see
:mod:`hatch_lambda.lockfile.trees`), since setuptools writes ``<name>.egg-info``
into the tree it reads. The answer is cached under the digest of the
files uv itself watches for such a project (``[tool.uv] cache-keys``, by
default ``pyproject.toml``, ``setup.py`` and ``setup.cfg``).
"""

from __future__ import annotations

import email.parser
import glob
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hatch_lambda.cache.entry import Entry
from hatch_lambda.lockfile.trees import copy_source
from hatch_lambda.nesting import nested_environment

METADATA = "metadata.json"
DEFAULT_CACHE_KEYS = ("pyproject.toml", "setup.py", "setup.cfg")


@dataclass(frozen=True)
class SourceMetadata:
    """What the build backend says a project needs."""

    requires_dist: tuple[str, ...]  # PEP 508 strings, extras as ``extra == "x"`` markers
    provides_extra: tuple[str, ...]
    backend: str  # the build backend that answered, e.g. "hatchling.build"


@dataclass(frozen=True)
class NotRead:
    """Why the metadata was not read (the lock is trusted instead)."""

    reason: str


def _cache_files(directory: Path, tool_uv: dict) -> list[Path]:
    """The files uv watches for ``directory`` (``cache-keys`` file entries; git and env keys are skipped)."""
    keys = tool_uv.get("cache-keys")
    patterns: list[str] = []
    if isinstance(keys, list):
        for key in keys:
            if isinstance(key, str):
                patterns.append(key)
            elif isinstance(key, dict) and isinstance(key.get("file"), str):
                patterns.append(key["file"])
    else:
        patterns = list(DEFAULT_CACHE_KEYS)
    found: set[Path] = set()
    for pattern in patterns:
        for match in glob.glob(pattern, root_dir=directory, recursive=True):
            path = directory / match
            if path.is_file():
                found.add(path)
    return sorted(found)


def _key(directory: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _backend(pyproject: dict) -> str:
    system = pyproject.get("build-system")
    backend = system.get("build-backend") if isinstance(system, dict) else None
    return backend if isinstance(backend, str) else "setuptools.build_meta:__legacy__"


def _has_sources(directory: Path) -> bool:
    """More than a pyproject.toml (and the lock, and projects of their own below it, such as workspace
    members): something a build backend could read the metadata from."""
    try:
        return any(
            entry.name not in ("pyproject.toml", "uv.lock")
            and not (entry.is_dir() and (entry / "pyproject.toml").is_file())
            for entry in directory.iterdir()
        )
    except OSError:
        return False


def read_metadata(directory: Path, pyproject: dict, cache: Path) -> SourceMetadata | NotRead:
    """The dependencies ``directory``'s build backend declares, or why they could not be read."""
    if not _has_sources(directory):
        return NotRead(f"only pyproject.toml is in {directory}, nothing to build the metadata from")
    tool_uv = pyproject.get("tool", {}).get("uv", {}) if isinstance(pyproject.get("tool"), dict) else {}
    files = _cache_files(directory, tool_uv if isinstance(tool_uv, dict) else {})
    key = _key(directory, files)
    entry = Entry(cache, "metadata", key, METADATA)

    def read(path: Path) -> SourceMetadata | None:
        try:
            data = json.loads((path / METADATA).read_text())
            return SourceMetadata(tuple(data["requires_dist"]), tuple(data["provides_extra"]), data["backend"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    cached = entry.read(read)
    if cached is not None:
        return cached
    backend = _backend(pyproject)
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    copies = Path(tempfile.mkdtemp(prefix=f".{key}.copy-", suffix=".tmp", dir=entry.path.parent))
    try:
        copy = copy_source(directory, copies, f"the project in {directory}", keep_out=[cache])
        text = _prepare_metadata(copy.tree, copy.environment)
    except Exception as exc:  # noqa: BLE001 - the backend's own failures come in many types
        detail = str(exc).strip().splitlines()
        return NotRead(f"its build backend ({backend}) could not give the metadata: {detail[-1] if detail else exc!r}")
    finally:
        shutil.rmtree(copies, ignore_errors=True)
    message = email.parser.Parser().parsestr(text)
    result = SourceMetadata(
        tuple(message.get_all("Requires-Dist") or ()), tuple(message.get_all("Provides-Extra") or ()), backend
    )

    def fill(temporary: Path) -> None:
        (temporary / METADATA).write_text(json.dumps({"requires_dist": result.requires_dist,
                                                     "provides_extra": result.provides_extra, "backend": backend}))

    return entry.get(read, fill)


def _runner(environment: Mapping[str, str]) -> Callable[..., None]:
    """pyproject_hooks' quiet runner, in ``environment`` as a nested build's (no lambda hook inside)."""
    from pyproject_hooks import quiet_subprocess_runner

    def run(cmd: Sequence[str], cwd: str | None = None, extra_environ: Mapping[str, str] | None = None) -> None:
        quiet_subprocess_runner(cmd, cwd, {**nested_environment(environment), **(extra_environ or {})})

    return run


def _prepare_metadata(directory: Path, environment: Mapping[str, str]) -> str:
    """The METADATA text ``prepare_metadata_for_build_wheel`` writes, in an isolated environment."""
    from build import ProjectBuilder
    from build.env import DefaultIsolatedEnv

    installer: Literal["uv", "pip"] = "uv" if shutil.which("uv") else "pip"
    with tempfile.TemporaryDirectory(prefix="hatch-lambda-metadata-") as out, \
            DefaultIsolatedEnv(installer=installer) as env:
        builder = ProjectBuilder.from_isolated_env(env, directory, runner=_runner(environment))
        env.install(builder.build_system_requires)
        env.install(builder.get_requires_for_build("wheel"))
        dist_info = Path(builder.metadata_path(out))
        return (dist_info / "METADATA").read_text(encoding="utf-8")
