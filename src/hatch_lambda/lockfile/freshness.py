"""Is uv.lock still the resolution of pyproject.toml, as uv judges it?

uv records each local package's declared requirements under
``[package.metadata]``. They are compared with what its ``pyproject.toml``
says now: names, extras and version specifiers exactly; markers by what they
decide on every Lambda runtime (uv rewrites marker text, e.g.
``python_version`` into ``python_full_version``, so the text cannot be
compared); whether a ``[tool.uv.sources]`` entry gives the package its source.

Only what is static is compared. A field listed in ``[project] dynamic`` is
computed by the build backend: for ``dependencies`` and
``optional-dependencies`` the backend is asked (:mod:`.source_metadata`) when
the project's source tree is there, otherwise the lock is trusted; either way a
note says which.

Sources are each project's own, as uv applies them: a workspace member's
``[tool.uv.sources]`` over the workspace root's; a path dependency that is not
a member, its own only.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import LOCAL_KINDS, Lock, read_toml, source_kind
from hatch_lambda.lockfile.markers import evaluate
from hatch_lambda.lockfile.dynamic import NotRead, read_metadata
from hatch_lambda.runtime.target import ARCHES, RUNTIMES, Target, allowed_runtimes

_SOURCE_KEYS = ("editable", "directory", "path", "git", "url", "virtual", "workspace", "index")


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


@dataclass(frozen=True)
class _Context:
    where: Path
    extras: list[str]
    targets: list[Target]
    sources: dict[str, list[dict]]  # [tool.uv.sources], by canonical name


class _Project:
    """One local package's pyproject.toml against its entry in the lock."""

    def __init__(self, lock: Lock, entry: dict, pyproject: Path, data: dict, sources: dict, cache: Path | None):
        self.lock = lock
        self.entry = entry
        self.pyproject = pyproject
        self.data = data
        self.project = data.get("project", {}) if isinstance(data.get("project"), dict) else {}
        self.dynamic = {canonicalize_name(f) for f in self.project.get("dynamic", []) if isinstance(f, str)}
        self.sources = sources
        self.cache = cache
        self.name = canonicalize_name(entry["name"])

    def stale(self, field: str, detail: str) -> None:
        _stale(self.lock, self.pyproject, field, detail)

    def compare(self) -> list[str]:
        notes = []
        metadata = self.entry["metadata"]
        self._compare_version()
        targets = _targets(self.lock.requires_python)
        dynamic = sorted(self.dynamic & {"dependencies", "optional-dependencies"})
        if dynamic:
            declared, extras, note = self._dynamic_requirements(dynamic)
            notes.append(note)
        else:
            declared, extras = self._static_requirements()
        if declared is not None:
            ours = _Context(self.pyproject, extras, targets, self.sources)
            theirs = _Context(self.lock.path, extras, targets, self.sources)
            want = _requirement_keys(declared, ours, from_lock=False)
            have = _requirement_keys(metadata.get("requires-dist", []), theirs, from_lock=True)
            if want != have:
                field = ("[project] dependencies and optional-dependencies" if not dynamic
                         else f"[project] {' and '.join(dynamic)} (from its build backend)")
                self.stale(field, _difference(want, have, self.sources))
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
        extras = sorted(canonicalize_name(e) for e in optional)
        declared: list = [(text, None) for text in self.project.get("dependencies", [])]
        for extra, requirements in optional.items():
            for text in requirements:
                declared.append((_with_extra(text, extra, self.pyproject), canonicalize_name(extra)))
        return declared, extras

    def _dynamic_requirements(self, dynamic: list[str]) -> tuple[list | None, list[str], str]:
        """What the build backend declares, or None (the lock is trusted), and a note saying which."""
        fields = " and ".join(dynamic)
        result = NotRead("no cache to keep the backend's answer in") if self.cache is None else read_metadata(
            self.pyproject.parent, self.data, self.cache)
        if isinstance(result, NotRead):
            return None, [], (f"{self.name}: {fields} dynamic in {self.pyproject}; trusted uv.lock's "
                              f"({result.reason})")
        extras = sorted(canonicalize_name(e) for e in result.provides_extra)
        declared = [(text, _extra_of(text, self.pyproject)) for text in result.requires_dist]
        return declared, extras, (f"{self.name}: {fields} dynamic in {self.pyproject}; read through its build "
                                  f"backend ({result.backend})")

    def _compare_groups(self, metadata: dict, targets: list[Target]) -> None:
        groups = _groups(self.data, self.pyproject)
        locked_groups = {canonicalize_name(g): v for g, v in metadata.get("requires-dev", {}).items()}
        if set(groups) != set(locked_groups):
            self.stale("[dependency-groups]", _list_difference("groups", sorted(groups), sorted(locked_groups)))
        ours = _Context(self.pyproject, [], targets, self.sources)
        theirs = _Context(self.lock.path, [], targets, self.sources)
        for group, requirements in groups.items():
            want = _requirement_keys(requirements, ours, from_lock=False, group=group)
            have = _requirement_keys(locked_groups[group], theirs, from_lock=True)
            if want != have:
                self.stale(f"[dependency-groups] {group}", _difference(want, have, self.sources))


def _list_difference(what: str, declared: list[str], locked: list[str]) -> str:
    added = sorted(set(declared) - set(locked))
    removed = sorted(set(locked) - set(declared))
    parts = [f"{', '.join(added)} declared but not locked"] if added else []
    parts += [f"{', '.join(removed)} locked but no longer declared"] if removed else []
    return f"{what} " + "; ".join(parts)


def _with_extra(text: str, extra: str, where: Path) -> str:
    requirement = _parse(text, where)
    condition = f'extra == "{extra}"'
    marker = f"({requirement.marker}) and {condition}" if requirement.marker else condition
    requirement.marker = None
    return f"{requirement}; {marker}"


def _extra_of(text: str, where: Path) -> str | None:
    """The extra a metadata ``Requires-Dist`` line belongs to (its ``extra == "x"`` clause), if any."""
    requirement = _parse(text, where)
    if requirement.marker is None:
        return None
    stack = list(requirement.marker._markers)
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, tuple):
            lhs, op, rhs = item
            for variable, value in ((lhs, rhs), (rhs, lhs)):
                if type(variable).__name__ == "Variable" and variable.value == "extra" and op.value == "==":
                    return canonicalize_name(value.value)
    return None


def _groups(data: dict, where: Path) -> dict[str, list[str]]:
    raw = {canonicalize_name(k): v for k, v in data.get("dependency-groups", {}).items()}
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


def _parse(text: str, where: Path) -> Requirement:
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        # uv (like pip) takes ``name @ url; marker``, which PEP 508 wants written ``name @ url ; marker``.
        url, semicolon, marker = text.partition(";")
        if " @ " in url and semicolon:
            try:
                return Requirement(f"{url.rstrip()} ; {marker.lstrip()}")
            except InvalidRequirement:
                pass
        raise LambdaBuildError(f"{where}: invalid requirement {text!r}: {exc}") from None


def _targets(requires_python: str | None) -> list[Target]:
    """The runtimes the lock covers: the environments a marker is judged on."""
    spec = SpecifierSet(requires_python or "")
    pythons = allowed_runtimes(spec)
    return [Target(python, arch) for python in pythons or RUNTIMES for arch in ARCHES]


def _marker_signature(marker: str | None, context: _Context) -> tuple[bool, ...]:
    """What ``marker`` decides on each target, with no extra and with each of the project's extras."""
    try:
        return _signature(marker, tuple(context.targets), tuple(context.extras))
    except InvalidMarker as exc:
        raise LambdaBuildError(f"{context.where}: invalid marker {marker!r}: {exc}") from None


_EXTRA = re.compile(r"""extra\s*[=!]=\s*['"]([^'"]+)['"]|['"]([^'"]+)['"]\s*[=!]=\s*extra""")


@lru_cache(maxsize=8192)
def _signature(marker: str | None, targets: tuple[Target, ...], extras: tuple[str, ...]) -> tuple[bool, ...]:
    # An extra the marker does not name decides as no extra does, so only the named ones are evaluated.
    named = {canonicalize_name(a or b) for a, b in _EXTRA.findall(marker or "")}
    out = []
    for target in targets:
        environment = target.marker_environment
        without = evaluate(marker, environment)
        by_extra = {extra: evaluate(marker, environment, {extra}) for extra in extras if extra in named}
        out.append(without)
        out += [by_extra.get(extra, without) for extra in extras]
    return tuple(out)


def _requirement_keys(items: list, context: _Context, *, from_lock: bool, group: str | None = None) -> Counter:
    """(name, extras, specifier, has a source, marker signature) of each requirement.

    uv writes a requirement whose sources carry markers (or extras) as one
    entry per source plus one for where none applies; a declared requirement is
    split the same way. Entries that hold on no Lambda runtime are left out on
    both sides: they cannot change what a Lambda build installs.
    """
    keys: Counter = Counter()

    def add(name, req_extras, specifier, has_source, signature):
        if any(signature):
            key = (
                canonicalize_name(name),
                tuple(sorted(canonicalize_name(e) for e in req_extras)),
                specifier,
                has_source,  # a [tool.uv.sources] entry added or removed changes where it comes from
                signature,
            )
            keys[key] += 1

    for item in items:
        if from_lock:
            has_source = any(key in item for key in _SOURCE_KEYS)
            try:
                specifier = "" if has_source else str(SpecifierSet(item.get("specifier", "")))
            except InvalidSpecifier:
                raise LambdaBuildError(
                    f"{context.where}: invalid specifier {item.get('specifier')!r} for {item['name']}",
                    "the lock is damaged; regenerate it with `uv lock`",
                ) from None
            add(item["name"], item.get("extras", []), specifier, has_source, _marker_signature(item.get("marker"), context))
            continue
        text, extra = item if isinstance(item, tuple) else (item, None)
        requirement = _parse(text, context.where)
        base = _marker_signature(str(requirement.marker) if requirement.marker else None, context)
        # A source limited to an extra or a group applies to that extra's or group's requirements only.
        sources = [
            source
            for source in context.sources.get(canonicalize_name(requirement.name), [])
            if isinstance(source, dict)
            and (not source.get("extra") or canonicalize_name(source["extra"]) == extra)
            and (not source.get("group") or canonicalize_name(source["group"]) == group)
        ]
        if requirement.url is not None:
            add(requirement.name, requirement.extras, "", True, base)
            continue
        covered = tuple(False for _ in base)
        for source in sources:
            applies = _marker_signature(source.get("marker"), context)
            add(requirement.name, requirement.extras, "", True, tuple(b and a for b, a in zip(base, applies)))
            covered = tuple(c or a for c, a in zip(covered, applies))
        rest = tuple(b and not c for b, c in zip(base, covered))
        add(requirement.name, requirement.extras, str(requirement.specifier), False, rest)
    return keys


def _describe_key(key: tuple, sources: dict[str, list[dict]]) -> str:
    name, extras, specifier, has_source, _ = key
    text = name + (f"[{','.join(extras)}]" if extras else "") + specifier
    if has_source:
        declared = sources.get(name)
        shown = ", ".join(_show_source(s) for s in declared) if declared else "a direct URL"
        text += f" from {shown}"
    return text


def _show_source(source: object) -> str:
    if not isinstance(source, dict):
        return repr(source)
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in source.items()) + " }"


def _difference(want: Counter, have: Counter, sources: dict[str, list[dict]]) -> str:
    """What differs, one clause per package: added, removed, or what changed (extras, specifier, source, markers)."""
    added, removed = want - have, have - want
    names = sorted({key[0] for key in added} | {key[0] for key in removed})
    clauses = []
    for name in names:
        ours = sorted(k for k in added if k[0] == name)
        theirs = sorted(k for k in removed if k[0] == name)
        if ours and not theirs and not any(k[0] == name for k in have):
            clauses.append(f"{_describe_key(ours[0], sources)} is declared but not in uv.lock")
        elif theirs and not ours and not any(k[0] == name for k in want):
            clauses.append(f"{_describe_key(theirs[0], sources)} is in uv.lock but no longer declared")
        else:
            changes = []
            a = ours[0] if ours else next(k for k in want if k[0] == name)
            b = theirs[0] if theirs else next(k for k in have if k[0] == name)
            if a[1] != b[1]:
                changes.append(f"extras [{','.join(a[1])}] in pyproject.toml, [{','.join(b[1])}] in uv.lock")
            if a[3] != b[3]:
                changes.append(
                    f"[tool.uv.sources] gives it {_describe_key(a, sources).split(' from ', 1)[1]}, uv.lock has it "
                    "from the index" if a[3] else "uv.lock has it from a source that [tool.uv.sources] no longer gives"
                )
            elif a[2] != b[2]:
                changes.append(f"specifier {a[2] or '(any)'!r} in pyproject.toml, {b[2] or '(any)'!r} in uv.lock")
            if not changes:
                changes.append("its markers or sources decide differently on the Lambda runtimes")
            clauses.append(f"{name}: " + "; ".join(changes))
    return "; ".join(clauses)
