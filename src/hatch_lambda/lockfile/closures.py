"""Which distributions each function needs: the closure of its root in the lock.

A function's root is the workspace member it names (``package = "..."``, whose
code it then ships), else the target's ``package``, else the project being
built (whose code it ships in both cases). Each distinct root is
resolved once, from one reading of the lock; the freshness check runs once. A
layer holds the union of the functions' closures (one version of each
distribution, or an error naming the functions that disagree); a fat zip holds
only its own function's closure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from hatch_lambda.config.options import FAT, LambdaConfig
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import find_lock, read_lock
from hatch_lambda.lockfile.resolve import Distribution, Resolution, resolve
from hatch_lambda.lockfile.workspace import member_directory


@dataclass(frozen=True)
class FunctionRoot:
    """Where one function's dependencies and code come from."""

    name: str  # the function
    root: str  # the member (or project) its closure starts from
    directory: Path  # the project directory its code is selected in
    distributions: frozenset[str]  # names in its closure


@dataclass(frozen=True)
class Plan:
    resolution: Resolution  # every distribution any function needs, the project's lock facts
    functions: tuple[FunctionRoot, ...]
    #: What lambda-fat leaves out by default because the Lambda runtime provides it (boto3 and what only it
    #: needs), as the lock pins it; computed only when a handler is to be imported.
    provided: tuple[Distribution, ...] = ()
    #: Each root's own resolution (lambda-fat builds them apart when they disagree on a version).
    roots: tuple[Resolution, ...] = ()

    def closure(self, function: str) -> frozenset[str]:
        return next(f.distributions for f in self.functions if f.name == function)

    @property
    def disagrees(self) -> bool:
        """Two roots need two versions (or sources) of one distribution."""
        names = [dist.name for dist in self.resolution.distributions]
        return len(names) != len(set(names))

    def split(self) -> list[Plan]:
        """One plan per root, with its own functions (to build fat zips whose closures disagree)."""
        return [
            Plan(resolution, tuple(f for f in self.functions if f.root == resolution.root), self.provided,
                 (resolution,))
            for resolution in self.roots
        ]


def plan(config: LambdaConfig, project_dir: Path, cache: Path | None) -> Plan:
    """Resolve every function's root; the union for the layer."""
    project_dir = Path(project_dir)
    lock = read_lock(find_lock(project_dir), config.target)
    default = canonicalize_name(config.package) if config.package else None
    roots: dict[str | None, Resolution] = {}
    functions = []
    for function in config.functions:
        key = canonicalize_name(function.package) if function.package else default
        if key not in roots:
            roots[key] = resolve(
                project_dir,
                config.target,
                # the target's extras and groups are those of its own root
                extras=config.extras if key == default else (),
                groups=config.groups if key == default else (),
                package=key,
                exclude=config.exclude_packages,
                strict_exclude=not config.exclude_is_default,
                check_fresh=not roots,
                cache=cache,
                lock=lock,
            )
        resolution = roots[key]
        # A function naming its member ships that member's code; otherwise the project's, as before.
        directory = project_dir
        if function.package:
            directory = member_directory(lock, canonicalize_name(function.package)) or project_dir
        functions.append(FunctionRoot(function.name, resolution.root, directory,
                                      frozenset(d.name for d in resolution.distributions)))
    first = next(iter(roots.values()))
    # A layer holds one version of each distribution; fat zips each hold their own.
    union = _union(list(roots.values()), functions, strict=config.kind != FAT)
    provided: tuple[Distribution, ...] = ()
    if config.kind == FAT and config.exclude_is_default and any(f.handler for f in config.functions):
        everything = [
            resolve(project_dir, config.target, extras=config.extras if key == default else (),
                    groups=config.groups if key == default else (), package=key, check_fresh=False, lock=lock)
            for key in roots
        ]
        kept = {d.name for d in union}
        provided = tuple(d for d in _union(everything, functions, strict=False) if d.name not in kept)
    return Plan(
        Resolution(
            lock_path=first.lock_path,
            lock_digest=first.lock_digest,
            root=first.root,
            target=first.target,
            extras=first.extras,
            groups=first.groups,
            distributions=union,
            notes=first.notes,
        ),
        tuple(functions),
        provided,
        tuple(roots.values()),
    )


def _union(resolutions: list[Resolution], functions: list[FunctionRoot], *, strict: bool) -> tuple[Distribution, ...]:
    """Every root's distributions once; with ``strict``, two roots needing two versions of one is an error."""
    chosen: dict[str, tuple[Distribution, str]] = {}
    others: set[Distribution] = set()
    for resolution in resolutions:
        for dist in resolution.distributions:
            other, other_root = chosen.setdefault(dist.name, (dist, resolution.root))
            if (other.version, other.source_kind, other.source) == (dist.version, dist.source_kind, dist.source):
                continue
            if not strict:
                others.add(dist)
                continue

            def users(root: str) -> str:
                return ", ".join(f.name for f in functions if f.root == root)

            raise LambdaBuildError(
                f"function {users(other_root)} (from {other_root}) needs {other.pin} and function "
                f"{users(resolution.root)} (from {resolution.root}) needs {dist.pin}, "
                "but one layer holds one version of a package",
                "build them as lambda-fat (each fat zip holds its own function's closure), or give them "
                "separate layers",
            )
    return tuple(sorted({dist for dist, _ in chosen.values()} | others, key=lambda d: (d.name, d.version)))
