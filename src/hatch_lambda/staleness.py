"""Is uv.lock still the resolution of pyproject.toml?

uv records each workspace member's declared requirements under
``[package.metadata]``. They are compared with what ``pyproject.toml`` says
now: names, extras and version specifiers exactly; markers by what they
decide on every Lambda runtime (uv rewrites marker text, e.g.
``python_version`` into ``python_full_version``, so the text cannot be
compared).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from .errors import LambdaBuildError
from .lock import LOCAL_KINDS, Lock, read_toml, source_kind
from .markers import evaluate
from .target import ARCHES, RUNTIMES, Target, allowed_runtimes

_SOURCE_KEYS = ("editable", "directory", "path", "git", "url", "virtual", "workspace", "index")


def check_fresh(lock: Lock, project_dir: Path | None) -> None:
    """Raise when any workspace member's pyproject.toml disagrees with the lock."""
    lock_dir = lock.path.parent
    checked = set()
    for entries in lock.packages.values():
        for entry in entries:
            kind, where = source_kind(entry)
            if kind not in LOCAL_KINDS or "metadata" not in entry:
                continue
            pyproject = (lock_dir / where / "pyproject.toml").resolve()
            if pyproject in checked or not pyproject.is_file():
                continue
            checked.add(pyproject)
            _compare(lock, entry, pyproject)
    _compare_requires_python(lock, sorted(checked))
    if project_dir is not None:
        own = (Path(project_dir) / "pyproject.toml").resolve()
        if own not in checked and own.is_file():
            name = read_toml(own).get("project", {}).get("name")
            if name and canonicalize_name(name) not in lock.packages:
                _stale(lock, own, f"{name} is not in the lock")


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
            f"requires-python {declared[culprit]!r} allows python {', '.join(want) or 'none of the Lambda runtimes'}"
            f" but the lock's {lock.requires_python!r} allows {', '.join(have) or 'none'}",
        )


def _stale(lock: Lock, pyproject: Path, detail: str) -> None:
    raise LambdaBuildError(
        f"{lock.path} is out of date with {pyproject}: {detail}",
        f"run `uv lock` in {lock.path.parent} and commit the result",
    )


def _compare(lock: Lock, entry: dict, pyproject: Path) -> None:
    data = read_toml(pyproject)
    project = data.get("project", {})
    metadata = entry["metadata"]
    extras = sorted(canonicalize_name(e) for e in project.get("optional-dependencies", {}))

    declared = [(text, None) for text in project.get("dependencies", [])]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        for text in requirements:
            declared.append((_with_extra(text, extra, pyproject), canonicalize_name(extra)))
    targets = _targets(lock.requires_python)
    # Sources in the workspace root's pyproject.toml apply to every member too,
    # unless the member names its own source for the package.
    root = lock.path.parent / "pyproject.toml"
    root_data = data if root.resolve() == pyproject or not root.is_file() else read_toml(root)
    sources = {}
    for d in (root_data, data):
        for n, source in d.get("tool", {}).get("uv", {}).get("sources", {}).items():
            sources[canonicalize_name(n)] = source if isinstance(source, list) else [source]
    ours = _Context(pyproject, extras, targets, sources)
    theirs = _Context(lock.path, extras, targets, sources)
    want = _requirement_keys(declared, ours, from_lock=False)
    have = _requirement_keys(metadata.get("requires-dist", []), theirs, from_lock=True)
    if want != have:
        _stale(lock, pyproject, _difference("dependencies", want, have))

    if "provides-extras" in metadata:
        locked_extras = sorted(canonicalize_name(e) for e in metadata["provides-extras"])
        if locked_extras != extras:
            _stale(lock, pyproject, f"optional-dependencies {extras} but the lock has {locked_extras}")

    groups = _groups(data, pyproject)
    locked_groups = {canonicalize_name(g): v for g, v in metadata.get("requires-dev", {}).items()}
    if set(groups) != set(locked_groups):
        _stale(lock, pyproject, f"dependency groups {sorted(groups)} but the lock has {sorted(locked_groups)}")
    for group, requirements in groups.items():
        want = _requirement_keys(requirements, ours, from_lock=False, group=group)
        have = _requirement_keys(locked_groups[group], theirs, from_lock=True)
        if want != have:
            _stale(lock, pyproject, _difference(f"group {group!r}", want, have))


def _with_extra(text: str, extra: str, where: Path) -> str:
    requirement = _parse(text, where)
    condition = f'extra == "{extra}"'
    marker = f"({requirement.marker}) and {condition}" if requirement.marker else condition
    requirement.marker = None
    return f"{requirement}; {marker}"


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
        raise LambdaBuildError(f"{where}: invalid requirement {text!r}: {exc}") from None


def _targets(requires_python: str | None) -> list[Target]:
    """The runtimes the lock covers: the environments a marker is judged on."""
    spec = SpecifierSet(requires_python or "")
    pythons = allowed_runtimes(spec)
    return [Target(python, arch) for python in pythons or RUNTIMES for arch in ARCHES]


def _marker_signature(marker: str | None, context: "_Context") -> tuple[bool, ...]:
    out = []
    try:
        for target in context.targets:
            for extra in ("", *context.extras):
                out.append(evaluate(marker, target.marker_environment, {extra} if extra else set()))
    except InvalidMarker as exc:
        raise LambdaBuildError(f"{context.where}: invalid marker {marker!r}: {exc}") from None
    return tuple(out)


@dataclass(frozen=True)
class _Context:
    where: Path
    extras: list[str]
    targets: list[Target]
    sources: dict[str, list[dict]]  # [tool.uv.sources], by canonical name


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
            if (not source.get("extra") or canonicalize_name(source["extra"]) == extra)
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


def _difference(what: str, want: Counter, have: Counter) -> str:
    added = sorted({key[0] for key in want - have})
    removed = sorted({key[0] for key in have - want})
    parts = []
    if added:
        parts.append(f"{', '.join(added)} changed or added in pyproject.toml")
    if removed:
        parts.append(f"{', '.join(removed)} as locked no longer declared")
    return f"{what}: " + "; ".join(parts)
