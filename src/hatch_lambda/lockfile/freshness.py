"""Is uv.lock still the resolution of pyproject.toml, as uv judges it?

uv records each local package's declared requirements under
``[package.metadata]``. They are compared with what its ``pyproject.toml``
says now: names, extras and version specifiers exactly; markers by what they
decide on every Lambda runtime (uv rewrites marker text, e.g.
``python_version`` into ``python_full_version``, so the text cannot be
compared); whether a ``[tool.uv.sources]`` entry gives the package its source.

Only what is static is compared. A field listed in ``[project] dynamic`` is
computed by the build backend: for ``dependencies`` and
``optional-dependencies`` the backend is asked (:mod:`.dynamic`) when
the project's source tree is there, otherwise the lock is trusted; either way a
note says which.

Sources are each project's own, as uv applies them: a workspace member's
``[tool.uv.sources]`` over the workspace root's; a path dependency that is not
a member, its own only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.dynamic import NotRead, read_metadata
from hatch_lambda.lockfile.file import LOCAL_KINDS, Lock, read_toml, source_kind
from hatch_lambda.lockfile.requirements import (
    Context,
    difference,
    extra_of,
    lock_targets,
    requirement_keys,
    with_extra,
)
from hatch_lambda.runtime.target import Target, allowed_runtimes


def check_fresh(lock: Lock, project_dir: Path | None, *, cache: Path | None = None) -> tuple[str, ...]:
    """Raise when any local package's pyproject.toml disagrees with the lock.

    Returns notes for the build output: which dynamic fields were read through
    the build backend and which were trusted from the lock. ``cache`` holds the
    metadata read through build backends (none: never ask a backend).
    """
    lock_dir = lock.path.parent
    members = set(lock.members)
    root_pyproject = (lock_dir / "pyproject.toml").resolve()
    root_data = read_toml(root_pyproject) if root_pyproject.is_file() else {}
    checked: list[Path] = []
    notes: list[str] = []
    for entry in lock.local_entries():
        kind, where = source_kind(entry)
        if kind not in LOCAL_KINDS or "metadata" not in entry:
            continue
        pyproject = (lock_dir / where / "pyproject.toml").resolve()
        if pyproject in checked or not pyproject.is_file():
            continue
        checked.append(pyproject)
        data = read_toml(pyproject)
        is_member = canonicalize_name(entry["name"]) in members if members else pyproject == root_pyproject
        inherited = root_data if is_member and pyproject != root_pyproject else {}
        notes += _Project(lock, entry, pyproject, data, _sources(inherited, data), cache).compare()
    _compare_requires_python(lock, checked)
    if project_dir is not None:
        own = (Path(project_dir) / "pyproject.toml").resolve()
        if own not in checked and own.is_file():
            name = read_toml(own).get("project", {}).get("name")
            if name and canonicalize_name(name) not in lock.names:
                _stale(lock, own, "[project] name", f"{name!r} is not in the lock")
    return tuple(notes)


def _sources(inherited: dict, data: dict) -> dict[str, list[dict]]:
    """``[tool.uv.sources]`` by canonical name: the workspace root's, then the project's own over them."""
    sources: dict[str, list[dict]] = {}
    for table in (inherited, data):
        uv = table.get("tool", {}).get("uv", {}) if isinstance(table.get("tool"), dict) else {}
        for name, source in (uv.get("sources", {}) if isinstance(uv, dict) else {}).items():
            sources[canonicalize_name(name)] = source if isinstance(source, list) else [source]
    return sources


def _runtimes(requires_python: str | None, where: Path) -> list[str]:
    """The Lambda runtimes ``requires-python`` allows."""
    try:
        spec = SpecifierSet(requires_python or "")
    except InvalidSpecifier:
        raise LambdaBuildError(f"{where}: invalid requires-python {requires_python!r}") from None
    return allowed_runtimes(spec)


def _compare_requires_python(lock: Lock, pyprojects: list[Path]) -> None:
    """uv locks for the intersection of the workspace members' requires-python.

    Compared by the Lambda runtimes allowed. Path and directory dependencies
    that are not members do not take part.
    """
    members = set(lock.members)
    declared = {}
    for pyproject in pyprojects:
        project = read_toml(pyproject).get("project", {})
        is_member = (
            canonicalize_name(project.get("name", "")) in members
            if members
            else pyproject == (lock.path.parent / "pyproject.toml").resolve()
        )
        if is_member and project.get("requires-python"):
            declared[pyproject] = project["requires-python"]
    if not declared:
        return
    have = _runtimes(lock.requires_python, lock.path)
    want = _runtimes(",".join(declared.values()), next(iter(declared)))
    if want != have:
        culprit = next((p for p, text in declared.items() if _runtimes(text, p) != have), next(iter(declared)))
        _stale(
            lock,
            culprit,
            "[project] requires-python",
            f"{declared[culprit]!r} allows python {', '.join(want) or 'none of the Lambda runtimes'}"
            f" but the lock's {lock.requires_python!r} allows {', '.join(have) or 'none'}",
        )


def _stale(lock: Lock, pyproject: Path, field: str, detail: str) -> None:
    raise LambdaBuildError(
        f"{lock.path} is out of date with {pyproject}: {field}: {detail}",
        f"run `uv lock` in {lock.path.parent} and commit the result",
    )


class _Project:
    """One local package's pyproject.toml against its entry in the lock."""

    def __init__(self, lock: Lock, entry: dict, pyproject: Path, data: dict, sources: dict, cache: Path | None):
        self.lock = lock
        self.entry = entry
        self.pyproject = pyproject
        self.data = data
        self.project = data.get("project", {}) if isinstance(data.get("project"), dict) else {}
        self.dynamic: set[str] = {canonicalize_name(f) for f in self.project.get("dynamic", []) if isinstance(f, str)}
        self.sources = sources
        self.cache = cache
        self.name = canonicalize_name(entry["name"])

    def stale(self, field: str, detail: str) -> None:
        _stale(self.lock, self.pyproject, field, detail)

    def compare(self) -> list[str]:
        notes = []
        metadata = self.entry["metadata"]
        self._compare_version()
        targets = lock_targets(self.lock.requires_python)
        dynamic = sorted(self.dynamic & {"dependencies", "optional-dependencies"})
        if dynamic:
            declared, extras, note = self._dynamic_requirements(dynamic)
            notes.append(note)
        else:
            declared, extras = self._static_requirements()
        if declared is not None:
            ours = Context(self.pyproject, extras, targets, self.sources)
            theirs = Context(self.lock.path, extras, targets, self.sources)
            want = requirement_keys(declared, ours, from_lock=False)
            have = requirement_keys(metadata.get("requires-dist", []), theirs, from_lock=True)
            if want != have:
                field = ("[project] dependencies and optional-dependencies" if not dynamic
                         else f"[project] {' and '.join(dynamic)} (from its build backend)")
                self.stale(field, difference(want, have, self.sources))
            if "provides-extras" in metadata:
                locked_extras = sorted(canonicalize_name(e) for e in metadata["provides-extras"])
                if locked_extras != extras:
                    self.stale("[project.optional-dependencies]", _list_difference("extras", extras, locked_extras))
        self._compare_groups(metadata, targets)
        return notes

    def _compare_version(self) -> None:
        declared = self.project.get("version")
        locked = self.entry.get("version")
        if "version" in self.dynamic or not isinstance(declared, str) or locked is None:
            return
        try:
            same = Version(declared) == Version(str(locked))
        except InvalidVersion:
            same = declared == str(locked)
        if not same:
            self.stale("[project] version", f"{self.name} is {declared!r}, uv.lock has {locked!r}")

    def _static_requirements(self) -> tuple[list, list[str]]:
        optional = self.project.get("optional-dependencies", {})
        extras: list[str] = sorted(canonicalize_name(e) for e in optional)
        declared: list = [(text, None) for text in self.project.get("dependencies", [])]
        for extra, requirements in optional.items():
            for text in requirements:
                declared.append((with_extra(text, extra, self.pyproject), canonicalize_name(extra)))
        return declared, extras

    def _dynamic_requirements(self, dynamic: list[str]) -> tuple[list | None, list[str], str]:
        """What the build backend declares, or None (the lock is trusted), and a note saying which."""
        fields = " and ".join(dynamic)
        result = NotRead("no cache to keep the backend's answer in") if self.cache is None else read_metadata(
            self.pyproject.parent, self.data, self.cache)
        if isinstance(result, NotRead):
            return None, [], (f"{self.name}: {fields} dynamic in {self.pyproject}; trusted uv.lock's "
                              f"({result.reason})")
        extras: list[str] = sorted(canonicalize_name(e) for e in result.provides_extra)
        declared = [(text, extra_of(text, self.pyproject)) for text in result.requires_dist]
        return declared, extras, (f"{self.name}: {fields} dynamic in {self.pyproject}; read through its build "
                                  f"backend ({result.backend})")

    def _compare_groups(self, metadata: dict, targets: list[Target]) -> None:
        groups = _groups(self.data, self.pyproject)
        locked_groups: dict[str, Any] = {canonicalize_name(g): v for g, v in metadata.get("requires-dev", {}).items()}
        if set(groups) != set(locked_groups):
            self.stale("[dependency-groups]", _list_difference("groups", sorted(groups), sorted(locked_groups)))
        ours = Context(self.pyproject, [], targets, self.sources)
        theirs = Context(self.lock.path, [], targets, self.sources)
        for group, requirements in groups.items():
            want = requirement_keys(requirements, ours, from_lock=False, group=group)
            have = requirement_keys(locked_groups[group], theirs, from_lock=True)
            if want != have:
                self.stale(f"[dependency-groups] {group}", difference(want, have, self.sources))


def _list_difference(what: str, declared: Sequence[str], locked: Sequence[str]) -> str:
    added = sorted(set(declared) - set(locked))
    removed = sorted(set(locked) - set(declared))
    parts = [f"{', '.join(added)} declared but not locked"] if added else []
    parts += [f"{', '.join(removed)} locked but no longer declared"] if removed else []
    return f"{what} " + "; ".join(parts)


def _groups(data: dict, where: Path) -> dict[str, list[str]]:
    raw: dict[str, Any] = {canonicalize_name(k): v for k, v in data.get("dependency-groups", {}).items()}
    legacy = data.get("tool", {}).get("uv", {}).get("dev-dependencies")
    if legacy is not None:
        raw.setdefault("dev", [])
        raw["dev"] = [*raw["dev"], *legacy]

    def expand(group: str, trail: tuple[str, ...]) -> list[str]:
        if group in trail:
            raise LambdaBuildError(f"{where}: dependency group {group!r} includes itself")
        if group not in raw:
            raise LambdaBuildError(f"{where}: dependency group {group!r} is included but not defined")
        out = []
        for item in raw[group]:
            if isinstance(item, dict) and "include-group" in item:
                out.extend(expand(canonicalize_name(item["include-group"]), (*trail, group)))
            elif isinstance(item, str):
                out.append(item)
        return out

    return {group: expand(group, ()) for group in raw}


