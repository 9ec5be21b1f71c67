"""The exact set of distributions one target needs, straight from ``uv.lock``.

No resolver runs here. The lock already holds the resolution for every
platform; this module walks it from the project through the dependency edges
whose markers hold for the :class:`~hatch_lambda.runtime.target.Target`, and
picks for each distribution the file that runtime installs
(:mod:`hatch_lambda.lockfile.wheels`).
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import InvalidMarker
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    canonicalize_name,
)

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import (
    LOCAL_KINDS,
    Lock,
    find_lock,
    read_lock,
    source_kind,
)
from hatch_lambda.lockfile.freshness import check_fresh as freshness
from hatch_lambda.lockfile.markers import (
    encode_extra,
    encode_group,
    encode_project,
    evaluate,
)
from hatch_lambda.lockfile.wheels import LockedFile, choose_file, no_file_error
from hatch_lambda.lockfile.workspace import choose_root
from hatch_lambda.runtime.target import Target, allowed_runtimes


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
    def sha256(self) -> str:
        """The digest the lock gives for this distribution's file (checked when the file is fetched)."""
        if self.file is None or not self.file.sha256:
            what = self.file.filename if self.file is not None else "its file"
            raise LambdaBuildError(f"{self.pin}: uv.lock has no sha256 for {what}",
                                   "run `uv lock` so every file carries a hash")
        return self.file.sha256

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

    entries = _Walk(lock, root_entry, target, extras, groups, frozenset(exclude)).entries()
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
        raise no_file_error(
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


@dataclass(frozen=True)
class _Walk:
    """The graph walk from one root, for one target, extras, groups and exclusions."""

    lock: Lock
    root: dict
    target: Target
    extras: tuple[str, ...]
    groups: tuple[str, ...]
    exclude: frozenset[str]

    def entries(self) -> list[dict]:
        """All entries reachable from the root; repeated until the active extras settle.

        Conflict markers (``extra == 'extra-3-pkg-cpu'``) depend on which extras and
        groups are active anywhere in the graph, as uv judges them: the root's
        project, extras and groups, and each extra an edge that holds turns on
        (``pkg[cpu]``). That is only known after a walk; one more walk confirms it.
        An edge's own extras count as active when its marker is judged, so
        ``pkg -> pkg-slim[x]`` marked ``extra == 'extra-8-pkg-slim-x' or ...`` holds.
        """
        root_name = canonicalize_name(self.root["name"])
        active = {encode_project(root_name)}
        active |= {encode_extra(root_name, e) for e in self.extras}
        active |= {encode_group(root_name, g) for g in self.groups}
        while True:
            entries, activated = self.once(frozenset(active))
            if activated <= active:
                return entries
            active |= activated

    def once(self, active: frozenset[str]) -> tuple[list[dict], set[str]]:
        """One walk: (entries in discovery order, pseudo-extras the edges activated)."""
        lock, root = self.lock, self.root
        environment = self.target.marker_environment
        seen: set[tuple[int, str | None]] = set()
        order: dict[int, dict] = {id(root): root}
        activated: set[str] = set()
        # Work items are (parent, edges): the root's base dependencies and the
        # extras and groups asked for; a reached package adds its base edges and
        # the optional-dependencies of each extra its incoming edge names.
        stack: list[tuple[dict, list[dict]]] = [(root, root.get("dependencies", []))]
        stack += [(root, _section(root, "optional-dependencies", e)) for e in self.extras]
        stack += [(root, _section(root, "dev-dependencies", g)) for g in self.groups]
        while stack:
            parent, edges = stack.pop()
            scope = canonicalize_name(parent["name"])
            for edge in edges:
                name = canonicalize_name(edge["name"])
                own = {encode_extra(name, e) for e in edge.get("extra", [])}
                if name in self.exclude or not _follow(edge, environment, active | own, lock, scope):
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


def _section(entry: dict, table: str, name: str) -> list[dict]:
    for key, edges in entry.get(table, {}).items():
        if canonicalize_name(key) == name:
            return edges
    return []


def _edge_target(lock: Lock, edge: dict, parent: str) -> dict:
    return lock.entry(
        edge["name"], version=edge.get("version"), source=edge.get("source"), via=f"{parent}'s dependency"
    )


def _follow(edge: dict, environment: dict, active: AbstractSet[str], lock: Lock, scope: str | None = None) -> bool:
    try:
        return evaluate(edge.get("marker"), environment, active, scope)
    except InvalidMarker as exc:
        raise LambdaBuildError(f"{lock.path}: invalid marker on {edge.get('name')}: {exc}", "run `uv lock`") from None


