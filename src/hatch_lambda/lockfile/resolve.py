"""Reading ``uv.lock``: the exact set of distributions one target needs.

No resolver runs here. The lock already holds the resolution for every
platform; this module walks it from the project through the dependency edges
whose markers hold for the :class:`~hatch_lambda.runtime.target.Target`, and picks for
each distribution the best file that runtime can install.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.markers import InvalidMarker
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import LOCAL_KINDS, SOURCE_KINDS, Lock, find_lock, may_fit, read_lock, read_toml, source_kind
from hatch_lambda.lockfile.freshness import check_fresh as freshness
from hatch_lambda.lockfile.markers import encode_extra, encode_group, encode_project, evaluate
from hatch_lambda.runtime.target import RUNTIMES, Target, allowed_runtimes

__all__ = ["LOCAL_KINDS", "SOURCE_KINDS", "Lock", "find_lock", "read_lock", "read_toml", "source_kind"]



@dataclass(frozen=True)
class LockedFile:
    """One file the lock names for a distribution: a wheel or an sdist."""

    kind: str  # "wheel" or "sdist"
    filename: str
    url: str | None = None  # remote location
    path: str | None = None  # local location, relative to the lock's directory
    sha256: str | None = None
    size: int | None = None
    tag: str | None = None  # for a wheel: the best of its tags for the target

    @property
    def label(self) -> str:
        return self.tag if self.kind == "wheel" else "sdist"


@dataclass(frozen=True)
class Distribution:
    """One distribution the target needs, as the lock pins it."""

    name: str  # canonical
    version: str
    source_kind: str  # one of SOURCE_KINDS
    source: str  # index URL, path, URL or git URL, as the lock writes it
    file: LockedFile | None  # None for sources built from a directory or git
    subdirectory: str | None = None  # of a URL source's archive, where its project is

    @property
    def is_local(self) -> bool:
        return self.source_kind in LOCAL_KINDS

    @property
    def pin(self) -> str:
        """``name==version``; a local package whose version is dynamic (uv locks none) is just its name."""
        return f"{self.name}=={self.version}" if self.version else self.name


@dataclass(frozen=True)
class Resolution:
    """The closure of one project's dependencies for one target."""

    lock_path: Path
    lock_digest: str  # sha256 of uv.lock's bytes
    root: str
    target: Target
    extras: tuple[str, ...]
    groups: tuple[str, ...]
    distributions: tuple[Distribution, ...]  # sorted by name, root left out
    notes: tuple[str, ...] = ()  # what the freshness check trusted or read, for the build output

    def names(self) -> list[str]:
        return [dist.name for dist in self.distributions]


def _filename(file: dict) -> str:
    if "filename" in file:
        return file["filename"]
    location = file.get("url") or file.get("path") or ""
    return unquote(urlsplit(location).path.rsplit("/", 1)[-1])


def _sha256(file: dict) -> str | None:
    digest = file.get("hash")
    if digest and digest.startswith("sha256:"):
        return digest.removeprefix("sha256:")
    return None


def _locked_file(kind: str, file: dict, tag: str | None = None, source: dict | None = None) -> LockedFile:
    # For a url or path source uv writes the file without a location (an sdist
    # as just ``{ hash = ... }``, a wheel as ``{ filename, hash }``): the file
    # is the source itself.
    if source and not file.get("url") and not file.get("path"):
        if "url" in source:
            file = {**file, "url": source["url"]}
        elif "path" in source:
            file = {**file, "path": source["path"]}
    return LockedFile(
        kind=kind,
        filename=_filename(file),
        url=file.get("url"),
        path=file.get("path"),
        sha256=_sha256(file),
        size=file.get("size"),
        tag=tag,
    )


def wheel_tags(file: dict) -> frozenset:
    try:
        return parse_wheel_filename(_filename(file))[3]
    except InvalidWheelFilename:
        return frozenset()


def best_wheel(entry: dict, target: Target) -> LockedFile | None:
    """The wheel of ``entry`` whose best tag ranks first for ``target``."""
    priority = target.tag_priority
    best: tuple[int, dict, str] | None = None
    for wheel in entry.get("wheels", []):
        if not may_fit(_filename(wheel), target):
            continue
        ranks = [(priority[tag], str(tag)) for tag in wheel_tags(wheel) if tag in priority]
        if ranks:
            rank, tag = min(ranks)
            if best is None or rank < best[0]:
                best = (rank, wheel, tag)
    return None if best is None else _locked_file("wheel", best[1], best[2], entry.get("source"))


def choose_file(entry: dict, target: Target) -> LockedFile | None:
    """Best wheel, else the sdist, else None."""
    wheel = best_wheel(entry, target)
    if wheel is not None:
        return wheel
    if "sdist" in entry:
        return _locked_file("sdist", entry["sdist"], source=entry.get("source"))
    return None


def resolve(
    project_dir: Path,
    target: Target,
    *,
    extras: Iterable[str] = (),
    groups: Iterable[str] = (),
    package: str | None = None,
    exclude: Iterable[str] = (),
    strict_exclude: bool = True,
    check_fresh: bool = True,
    cache: Path | None = None,
    lock: Lock | None = None,
    files: bool = True,
) -> Resolution:
    """The distributions ``project_dir`` needs on ``target``, straight from uv.lock.

    ``exclude`` names distributions to leave out together with whatever only
    they pulled in; a name the lock does not have is an error unless
    ``strict_exclude`` is false (as for lambda-fat's default boto3/botocore).
    ``package`` picks a workspace member other than the project in
    ``project_dir``. ``cache`` keeps the metadata of local projects whose
    dependencies are dynamic, read through their build backends (without one
    the lock is trusted for them). ``lock``: the project's lock, already read
    for ``target`` (several roots of one build share it).
    ``files=False``: the pinned set only, as ``uv export`` lists it, with no
    file chosen (so nothing is refused for having no wheel for the target).
    """
    project_dir = Path(project_dir)
    if lock is None:
        lock = read_lock(find_lock(project_dir), target)
    lock_path = lock.path
    root = choose_root(project_dir, lock, package)
    extras = tuple(sorted({canonicalize_name(e) for e in extras}))
    groups = tuple(sorted({canonicalize_name(g) for g in groups}))
    exclude = {canonicalize_name(name) for name in exclude}
    names = set(lock.names)
    unknown = sorted(name for name in exclude if name not in names)
    if unknown and strict_exclude:
        raise LambdaBuildError(
            f"cannot exclude {', '.join(unknown)}: not in {lock_path}",
            f"check the spelling; the lock has: {', '.join(sorted(names))}",
        )

    _check_requires_python(lock, target)
    _check_environments(lock, target)
    notes: tuple[str, ...] = ()
    if check_fresh:
        notes = freshness(lock, project_dir if not package else None, cache=cache)

    root_entry = lock.entry(root, via="the project")
    _check_requested(lock, root_entry, extras, groups)
    _check_conflicts(lock, root, extras, groups)

    entries = _walk(lock, root_entry, target, extras, groups, exclude)
    distributions = []
    missing = []
    for entry in entries:
        if canonicalize_name(entry["name"]) == root:
            continue
        kind, where = source_kind(entry)
        if kind == "virtual":
            continue
        file = None
        if files and kind not in LOCAL_KINDS and kind != "git":
            file = choose_file(entry, target)
            if file is None:
                missing.append(entry)
                continue
        distributions.append(
            Distribution(
                name=canonicalize_name(entry["name"]),
                version=str(entry.get("version", "")),
                source_kind=kind,
                source=where,
                file=file,
                subdirectory=entry.get("source", {}).get("subdirectory") if kind == "url" else None,
            )
        )
    if missing:
        complete = read_lock(lock_path)  # with the wheels for other systems, to name them
        raise _no_file_error(
            complete,
            [complete.entry(e["name"], version=e.get("version"), source=e.get("source")) for e in missing],
            target,
        )
    distributions.sort(key=lambda d: (d.name, d.version))
    _check_one_version_each(lock, distributions)
    return Resolution(
        lock_path=lock_path,
        lock_digest=lock.digest,
        root=root,
        target=target,
        extras=extras,
        groups=groups,
        distributions=tuple(distributions),
        notes=notes,
    )


def workspace_members(lock: Lock) -> list[str]:
    """The workspace's members, canonical and sorted: ``[manifest] members``, else the lock's one project."""
    if lock.members:
        return sorted(lock.members)
    return sorted(
        canonicalize_name(entry["name"])
        for entry in lock.local_entries()
        if entry.get("source", {}).get("editable") == "." or entry.get("source", {}).get("virtual") == "."
    )


def _choose_member_fix(members: list[str]) -> str:
    listed = ", ".join(members) or "none"
    return (
        f"choose a member: `--package NAME` (hatch-lambda requirements), `package = \"NAME\"` in the target's "
        f"table or in a function's, or build from the member's own directory; members: {listed}"
    )


def member_directory(lock: Lock, name: str) -> Path | None:
    """Where a local package of the lock (a workspace member) lives, or None."""
    for entry in lock.entries(name):
        kind, where = source_kind(entry)
        if kind in LOCAL_KINDS:
            return (lock.path.parent / where).resolve()
    return None


def choose_root(project_dir: Path, lock: Lock, package: str | None) -> str:
    """The workspace member a build starts from: ``package``, else the project in ``project_dir``."""
    members = workspace_members(lock)
    if package:
        name = canonicalize_name(package)
        if members and name not in members:
            raise LambdaBuildError(
                f"{package!r} is not a member of the workspace of {lock.path}",
                _choose_member_fix(members),
            )
        return name
    pyproject = project_dir / "pyproject.toml"
    if not pyproject.is_file():
        raise LambdaBuildError(f"no pyproject.toml in {project_dir}")
    data = read_toml(pyproject)
    name = data.get("project", {}).get("name") if isinstance(data.get("project"), dict) else None
    if not name:
        what = ("has no [project] table: it is a virtual workspace root, not a package"
                if "project" not in data else "has no [project] name")
        raise LambdaBuildError(f"{pyproject} {what}", _choose_member_fix(members))
    return canonicalize_name(name)


def _check_environments(lock: Lock, target: Target) -> None:
    """``[tool.uv] environments`` limits the lock to some systems; the target must be one of them."""
    supported = lock.data.get("supported-markers")
    if not supported:
        return
    environment = target.marker_environment
    try:
        if any(evaluate(marker, environment) for marker in supported):
            return
    except InvalidMarker as exc:
        raise LambdaBuildError(f"{lock.path}: invalid supported-markers entry: {exc}", "run `uv lock`") from None
    raise LambdaBuildError(
        f"{lock.path} was resolved only for the environments "
        f"{', '.join(repr(m) for m in supported)} ([tool.uv] environments), "
        f"and {target.describe()} is not one of them",
        "add a marker that holds on Lambda, e.g. \"sys_platform == 'linux'\", to [tool.uv] environments "
        "in pyproject.toml and run `uv lock`",
    )


def _check_requires_python(lock: Lock, target: Target) -> None:
    """The runtime's patch release must be one ``requires-python`` allows (uv locked for no other)."""
    text = lock.requires_python
    if not text:
        return
    try:
        spec = SpecifierSet(text)
    except InvalidSpecifier:
        raise LambdaBuildError(f"{lock.path}: invalid requires-python {text!r}", "run `uv lock`") from None
    if spec.contains(target.full_version, prereleases=True):
        return
    fixes = []
    allowed = allowed_runtimes(spec)
    if allowed:
        fixes.append(f"target one of: {', '.join(allowed)}")
    major, minor, micro = (int(part) for part in target.full_version.split("."))
    later = next((f"{major}.{minor}.{m}" for m in range(micro + 1, 100) if spec.contains(f"{major}.{minor}.{m}")),
                 None)
    if later:
        fixes.append(f"if Lambda's {target.runtime} now runs {later} or newer (hatch-lambda's runtime table "
                     f"says {target.full_version}), set python = \"{later}\"")
    raise LambdaBuildError(
        f"python {target.python} (Lambda runs {target.full_version}) is outside the project's requires-python "
        f"{text!r} ({lock.path})",
        "; or ".join(fixes) or "widen requires-python in pyproject.toml",
    )


def _check_requested(lock: Lock, root: dict, extras: tuple[str, ...], groups: tuple[str, ...]) -> None:
    metadata = root.get("metadata", {})
    known_extras = {canonicalize_name(e) for e in metadata.get("provides-extras", [])}
    known_extras |= {canonicalize_name(e) for e in root.get("optional-dependencies", {})}
    known_groups = {canonicalize_name(g) for g in metadata.get("requires-dev", {})}
    known_groups |= {canonicalize_name(g) for g in root.get("dev-dependencies", {})}
    for kind, asked, known in (("extra", extras, known_extras), ("group", groups, known_groups)):
        unknown = sorted(set(asked) - known)
        if unknown:
            table = "[project.optional-dependencies]" if kind == "extra" else "[dependency-groups]"
            raise LambdaBuildError(
                f"{root['name']} has no {kind} {', '.join(map(repr, unknown))} (in {lock.path})",
                f"choose from: {', '.join(sorted(known)) or 'none defined'}; or add it to {table} and run `uv lock`",
            )


def _check_conflicts(lock: Lock, root: str, extras: tuple[str, ...], groups: tuple[str, ...]) -> None:
    """uv.lock has no resolution for extras/groups declared in ``[tool.uv] conflicts`` together."""
    asked = {("extra", e) for e in extras} | {("group", g) for g in groups}
    for conflict in lock.data.get("conflicts", []):
        clash = sorted(
            (kind, canonicalize_name(item[kind]))
            for item in conflict
            for kind in ("extra", "group")
            if kind in item and canonicalize_name(item.get("package", "")) == root
            and (kind, canonicalize_name(item[kind])) in asked
        )
        if len(clash) > 1:
            named = " and ".join(f"{kind} {name!r}" for kind, name in clash)
            raise LambdaBuildError(
                f"{root}: {named} are declared as conflicting ([tool.uv] conflicts), "
                f"so {lock.path} has no resolution with them together",
                "ask for only one of them (build a separate layer for the other)",
            )


def _check_one_version_each(lock: Lock, distributions: list[Distribution]) -> None:
    seen: dict[str, Distribution] = {}
    for dist in distributions:
        other = seen.setdefault(dist.name, dist)
        if other is not dist:
            raise LambdaBuildError(
                f"{lock.path}: both {other.pin} ({other.source}) and {dist.pin} ({dist.source}) are needed "
                "for this selection, but one environment holds one version of a package",
                "check [tool.uv] conflicts and the extras and groups asked for, then run `uv lock`",
            )


def _walk(
    lock: Lock,
    root: dict,
    target: Target,
    extras: tuple[str, ...],
    groups: tuple[str, ...],
    exclude: set[str],
) -> list[dict]:
    """All entries reachable from ``root``; repeated until the active extras settle.

    Conflict markers (``extra == 'extra-3-pkg-cpu'``) depend on which extras and
    groups are active anywhere in the graph, as uv judges them: the root's
    project, extras and groups, and each extra an edge that holds turns on
    (``pkg[cpu]``). That is only known after a walk; one more walk confirms it.
    An edge's own extras count as active when its marker is judged, so
    ``pkg -> pkg-slim[x]`` marked ``extra == 'extra-8-pkg-slim-x' or ...`` holds.
    """
    root_name = canonicalize_name(root["name"])
    active = {encode_project(root_name)}
    active |= {encode_extra(root_name, e) for e in extras} | {encode_group(root_name, g) for g in groups}
    while True:
        entries, activated = _walk_once(lock, root, target, extras, groups, exclude, frozenset(active))
        if activated <= active:
            return entries
        active |= activated


def _section(entry: dict, table: str, name: str) -> list[dict]:
    for key, edges in entry.get(table, {}).items():
        if canonicalize_name(key) == name:
            return edges
    return []


def _walk_once(lock, root, target, extras, groups, exclude, active):
    """One walk: (entries in discovery order, pseudo-extras the edges activated)."""
    environment = target.marker_environment
    seen: set[tuple[int, str | None]] = set()
    order: dict[int, dict] = {id(root): root}
    activated: set[str] = set()
    # Work items are (parent, edges): the root's base dependencies and the
    # extras and groups asked for; a reached package adds its base edges and
    # the optional-dependencies of each extra its incoming edge names.
    stack: list[tuple[dict, list[dict]]] = [(root, root.get("dependencies", []))]
    stack += [(root, _section(root, "optional-dependencies", e)) for e in extras]
    stack += [(root, _section(root, "dev-dependencies", g)) for g in groups]
    while stack:
        parent, edges = stack.pop()
        scope = canonicalize_name(parent["name"])
        for edge in edges:
            name = canonicalize_name(edge["name"])
            own = {encode_extra(name, e) for e in edge.get("extra", [])}
            if name in exclude or not _follow(edge, environment, active | own, lock, scope):
                continue
            child = _edge_target(lock, edge, parent["name"])
            order.setdefault(id(child), child)
            for extra in (None, *(canonicalize_name(e) for e in edge.get("extra", []))):
                if (id(child), extra) in seen:
                    continue
                seen.add((id(child), extra))
                if extra is None:
                    stack.append((child, child.get("dependencies", [])))
                else:
                    activated.add(encode_extra(name, extra))
                    stack.append((child, _section(child, "optional-dependencies", extra)))
    return list(order.values()), activated


def _edge_target(lock: Lock, edge: dict, parent: str) -> dict:
    return lock.entry(
        edge["name"], version=edge.get("version"), source=edge.get("source"), via=f"{parent}'s dependency"
    )


def _follow(edge: dict, environment: dict, active: set[str], lock: Lock, scope: str | None = None) -> bool:
    try:
        return evaluate(edge.get("marker"), environment, active, scope)
    except InvalidMarker as exc:
        raise LambdaBuildError(f"{lock.path}: invalid marker on {edge.get('name')}: {exc}", "run `uv lock`") from None


def _platform_summary(tags: Iterable) -> str:
    """The platforms a package's wheels are for, in a few words: ``manylinux_2_28_x86_64, macosx (3), win (2)``."""
    linux, other = set(), {}
    for tag in tags:
        platform = str(tag.platform)
        if platform.startswith(("manylinux", "linux", "musllinux")):
            linux.add(platform)
        else:
            family = platform.split("_", 1)[0]
            other.setdefault(family, set()).add(platform)
    parts = sorted(linux)[:6] + (["…"] if len(linux) > 6 else [])
    parts += [f"{family} ({len(found)})" if len(found) > 1 else next(iter(found)) for family, found in sorted(other.items())]
    return ", ".join(parts) or "no platform"


class NoFileError(LambdaBuildError):
    """Distributions the target needs that have no file it can install; ``names`` says which."""

    def __init__(self, problem: str, fix: str, names: tuple[str, ...]) -> None:
        super().__init__(problem, fix)
        self.names = names


def _no_file_error(lock: Lock, entries: list[dict], target: Target) -> NoFileError:
    allowed = [p for p in _allowed_by_lock(lock) if p != target.python]
    lines = []
    fixes = []
    for entry in entries:
        tags = [tag for wheel in entry.get("wheels", []) for tag in wheel_tags(wheel)]
        pythons = sorted({str(tag.interpreter) for tag in tags})
        name = f"{entry['name']} {entry.get('version', '')}".strip()
        lines.append(
            f"{name} has no wheel for {target.describe()} and no sdist; "
            f"its wheels are for {_platform_summary(tags)} ({', '.join(pythons[:8]) or '-'})"
        )
        works = [p for p in allowed if best_wheel(entry, Target(p, target.arch)) is not None]
        if works:
            fixes.append(f"target python {' or '.join(works)} (which {entry['name']} has wheels for)")
        fixes.append(
            f"pin {entry['name']} to a release with a wheel for glibc {target.glibc[0]}.{target.glibc[1]} "
            f"or older ({target.platforms[0]}, manylinux2014_{target.machine}) and run `uv lock`"
        )
    names = tuple(canonicalize_name(entry["name"]) for entry in entries)
    return NoFileError(f"{lock.path}: " + "; ".join(lines), "; or ".join(dict.fromkeys(fixes)), names)


def _allowed_by_lock(lock: Lock) -> list[str]:
    """The Lambda runtimes the lock's ``requires-python`` allows (every one when it has none or is invalid)."""
    try:
        return allowed_runtimes(SpecifierSet(lock.requires_python or ""))
    except InvalidSpecifier:
        return list(RUNTIMES)
