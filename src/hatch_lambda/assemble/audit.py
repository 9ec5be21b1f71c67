"""The native-code audit of an artifact's files, and Lambda's size limits.

For each ELF object (its facts read with pyelftools when its pack was made, or
from an unpacked tree for ``inspect``): its CPU, the highest ``GLIBC_`` symbol
version it needs, the ``GLIBCXX_``/``CXXABI_`` versions it needs from the
system's ``libstdc++.so.6``, an extension module's ABI suffix, and that every
``DT_NEEDED`` library is in the artifact or in the runtime's base system
(:mod:`hatch_lambda.runtime.base_system`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path

from hatch_lambda.config.options import MB
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.packs.elf import DT_RELR_GLIBC, LIBSTDCXX_NAME, ElfInfo, elf_objects
from hatch_lambda.packs.unpack import StagedTree
from hatch_lambda.runtime.base_system import BASE_LIBRARIES, LIBSTDCXX
from hatch_lambda.runtime.target import Target

ELF_MACHINES = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}
#: ``name.<tag>.so``: the tag of an extension module's file name.
EXTENSION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.(?P<tag>[^.]+)\.so$")


@dataclass(frozen=True)
class ElfObject:
    path: str
    machine: str
    glibc: tuple[int, int] | None


@dataclass(frozen=True)
class Finding:
    """One thing about one file that will not work on the runtime."""

    package: str
    path: str
    found: str
    allowed: str
    fix: str

    @property
    def line(self) -> str:
        return f"{self.package}: {self.path}: found {self.found}, the runtime allows {self.allowed}; fix: {self.fix}"

    def as_dict(self) -> dict[str, str]:
        return {"package": self.package, "file": self.path, "found": self.found, "allowed": self.allowed,
                "fix": self.fix}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Finding:
        return cls(data["package"], data["file"], data["found"], data["allowed"], data["fix"])


@dataclass
class AuditReport:
    objects: list[ElfObject] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [finding.line for finding in self.findings]


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def owners(tree: StagedTree) -> dict[str, str]:
    """path -> distribution name, for every staged file."""
    return {path: dist.name for dist in tree.distributions for path in dist.files}


def check_object(path: str, package: str, info: ElfInfo, target: Target, names: set[str]) -> list[Finding]:
    """Everything about one ELF object that does not fit ``target``."""
    expected = ELF_MACHINES[target.machine]
    docker = 'or build it in the Lambda image with installer = "docker"'
    if info.machine != expected:
        return [Finding(package, path, f"machine {info.machine}", f"{expected} ({target.arch})",
                        f"use {package}'s {target.machine} wheel (is arch set to the CPU you deploy to?), {docker}")]
    out = []
    major, minor = target.glibc
    if info.glibc and info.glibc > target.glibc:
        found = f"GLIBC_{info.glibc[0]}.{info.glibc[1]}"
        if info.relr and info.glibc == DT_RELR_GLIBC:
            found = "GLIBC_ABI_DT_RELR (glibc 2.36)"
        out.append(Finding(package, path, found,
                           f"GLIBC_{major}.{minor} at most ({target.os_release})",
                           f"pin a {package} release with a wheel for manylinux_{major}_{minor} or older, {docker}"))
    if LIBSTDCXX_NAME not in names:  # a bundled libstdc++ brings its own symbol versions
        have = LIBSTDCXX[target.os_release]
        for family, version in sorted(info.cxx.items()):
            if version > have[family]:
                out.append(Finding(
                    package, path, f"{family}_{_dotted(version)}",
                    f"{family}_{_dotted(have[family])} at most (libstdc++ of {target.os_release})",
                    f"pin a {package} release built with an older compiler (a manylinux_{major}_{minor} wheel), "
                    f"or one that bundles its libstdc++, {docker}",
                ))
    match = EXTENSION.match(path.rsplit("/", 1)[-1])
    if match:
        tag = match["tag"]
        right = f"cpython-{target.python.replace('.', '')}-{target.machine}-linux-gnu"
        if tag.startswith(("cpython-", "pypy")) and tag != right:
            out.append(Finding(package, path, f"extension suffix .{tag}.so", f".{right}.so, .abi3.so or .so",
                               f"use {package}'s wheel for python {target.python} "
                               f"(is python set to the runtime you deploy to?), {docker}"))
    for library in info.needed:
        if library not in names and library not in BASE_LIBRARIES:
            out.append(Finding(
                package, path, f"DT_NEEDED {library}, which is not in the artifact",
                "libraries in the artifact or in its base system (glibc, libgcc_s, libstdc++, libz, libexpat)",
                f"use a {package} wheel that bundles {library} (auditwheel repair), ship {library} in the artifact "
                f"or another layer, or leave {package} out with exclude-packages",
            ))
    return out


def audit_objects(
    objects: Iterable[tuple[str, str, ElfInfo]], target: Target, names: set[str]
) -> AuditReport:
    """Check each (path, distribution, ELF facts); ``names``: every file name the artifact holds
    (a DT_NEEDED library may be one of them)."""
    report = AuditReport()
    for path, package, info in sorted(objects, key=lambda item: item[0]):
        report.objects.append(ElfObject(path, info.machine, info.glibc))
        report.findings += check_object(path, package, info, target, names)
    return report


def audit_root(
    root: Path, target: Target, owner: Mapping[str, str], names: AbstractSet[str] = frozenset(),
) -> AuditReport:
    """Check every ELF object under ``root``; ``owner`` maps a relative path to its distribution.

    ``names``: more file names the artifact holds (a DT_NEEDED library may be one of them).
    """
    objects, on_disk = elf_objects(root)
    return audit_objects(((path, owner.get(path, "?"), info) for path, info in objects), target, on_disk | set(names))


def audit_message(report: AuditReport, target: Target, limit: int = 10) -> LambdaBuildError:
    lines = report.problems
    more = f" (and {len(lines) - limit} more)" if len(lines) > limit else ""
    return LambdaBuildError(
        f"the staged tree does not fit {target.describe()}:\n    " + "\n    ".join(lines[:limit]) + more,
        "follow the fix on each line, or leave the package out (exclude-packages); "
        'audit = "warn" builds anyway, audit = "off" skips the check',
    )


def enforce(report: AuditReport, target: Target, mode: str, warn: Callable[[str], None]) -> None:
    """Raise (``"error"``), print (``"warn"``) or ignore (``"off"``) the report's findings."""
    if mode == "off" or not report.findings:
        return
    error = audit_message(report, target)
    if mode == "warn":
        warn(f"warning: {error.problem}")
    else:
        raise error


def audit_elf(tree: StagedTree, mode: str = "error", warn: Callable[[str], None] = print) -> AuditReport:
    """Every ELF object must load on the target; raise, warn or skip by ``mode``."""
    if mode == "off":
        return AuditReport()
    report = audit_root(tree.root, tree.target, owners(tree))
    enforce(report, tree.target, mode, warn)
    return report


def sizes_by_distribution(tree: StagedTree) -> list[tuple[str, int]]:
    """(distribution, bytes now on disk), largest first."""
    out = []
    for dist in tree.distributions:
        total = 0
        for path in dist.files:
            full = tree.root / path
            if full.is_file():
                total += full.stat().st_size
        out.append((f"{dist.name} {dist.version}", total))
    out.sort(key=lambda item: (-item[1], item[0]))
    return out


@dataclass(frozen=True)
class SizeCheck:
    artifact: str
    zipped: int
    unzipped: int  # what Lambda unpacks for it: a function counts its layer too


def check_sizes(
    checks: list[SizeCheck],
    *,
    max_zipped_mb: float,
    max_unzipped_mb: float,
    largest: list[tuple[str, int]],
    mode: str,
    warn: Callable[[str], None],
) -> None:
    """Compare each artifact with the limits; raise, warn or do nothing by ``mode``."""
    if mode == "off":
        return
    over = []
    for check in checks:
        if check.zipped > max_zipped_mb * MB:
            over.append(f"{check.artifact} is {check.zipped / MB:.1f} MB zipped (limit {max_zipped_mb:g} MB)")
        if check.unzipped > max_unzipped_mb * MB:
            over.append(
                f"{check.artifact} unpacks to {check.unzipped / MB:.1f} MB (limit {max_unzipped_mb:g} MB)"
            )
    if not over:
        return
    table = "\n".join(f"      {size / MB:9.1f} MB  {name}" for name, size in largest[:10])
    message = "; ".join(over) + f"\n    largest distributions (unzipped):\n{table}"
    fix = (
        "leave big packages out with exclude-packages (or provide them in another layer); "
        "zipped uploads over 50 MB can go through S3 (raise max-zipped-mb, 250 MB unzipped still applies)"
    )
    if mode == "warn":
        warn(f"warning: {message}\n  {fix}")
        return
    raise LambdaBuildError(message, fix + '; or set size-check = "warn" to build anyway')
