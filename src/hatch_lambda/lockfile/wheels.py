"""The one file of a distribution the target installs: its best wheel by tag priority, else its sdist.

Wheels are ranked by the target's tag order (:attr:`.Target.tag_priority`):
the runtime's own ABI on its newest glibc first, ``linux_<arch>`` last. A
distribution with no file the target can use is one error naming the platforms
its wheels are for and what would work instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.file import Lock, may_fit
from hatch_lambda.lockfile.trust import file_name, file_table
from hatch_lambda.runtime.runtimes import RUNTIMES
from hatch_lambda.runtime.target import Target, allowed_runtimes


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
        return (self.tag or "wheel") if self.kind == "wheel" else "sdist"


def _filename(file: dict) -> str:
    return file_name(file)


def _sha256(file: dict) -> str | None:
    """The hex sha256 of a file (lowercase, as the cache names it); its form was checked when the lock was read."""
    digest = file.get("hash")
    if digest and digest.startswith("sha256:"):
        return digest.removeprefix("sha256:").lower()
    return None


def _locked_file(kind: str, file: dict, tag: str | None = None, source: dict | None = None) -> LockedFile:
    file = file_table(file, source)
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


def _platform_summary(tags: Iterable) -> str:
    """The platforms a package's wheels are for, in a few words: ``manylinux_2_28_x86_64, macosx (3), win (2)``."""
    linux: set[str] = set()
    other: dict[str, set[str]] = {}
    for tag in tags:
        platform = str(tag.platform)
        if platform.startswith(("manylinux", "linux", "musllinux")):
            linux.add(platform)
        else:
            family = platform.split("_", 1)[0]
            other.setdefault(family, set()).add(platform)
    parts = sorted(linux)[:6] + (["…"] if len(linux) > 6 else [])
    for family, found in sorted(other.items()):
        parts.append(f"{family} ({len(found)})" if len(found) > 1 else next(iter(found)))
    return ", ".join(parts) or "no platform"


class NoFileError(LambdaBuildError):
    """Distributions the target needs that have no file it can install; ``names`` says which."""

    def __init__(self, problem: str, fix: str, names: tuple[str, ...]) -> None:
        super().__init__(problem, fix)
        self.names = names


def no_file_error(lock: Lock, entries: list[dict], target: Target) -> NoFileError:
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
