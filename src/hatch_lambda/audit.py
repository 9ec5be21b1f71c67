"""Checks on a staged tree: CPU and glibc of every ELF object, and Lambda's size limits."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from .errors import LambdaBuildError
from .install import StagedTree
from .target import Target

ELF_MACHINES = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}
GLIBC = re.compile(r"^GLIBC_(\d+)\.(\d+)")
MB = 1 << 20


@dataclass(frozen=True)
class ElfObject:
    path: str
    machine: str  # pyelftools' e_machine name, e.g. EM_X86_64
    glibc: tuple[int, int] | None  # highest GLIBC_x.y symbol version it needs


@dataclass
class AuditReport:
    objects: list[ElfObject] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_elf(path: Path) -> tuple[str, tuple[int, int] | None] | None:
    """(machine, highest glibc needed) of an ELF file, or None if it is not one."""
    with path.open("rb") as handle:
        if handle.read(4) != b"\x7fELF":
            return None
        handle.seek(0)
        try:
            elf = ELFFile(handle)
            machine = elf["e_machine"]
            highest = None
            for section in elf.iter_sections():
                if not isinstance(section, GNUVerNeedSection):
                    continue
                for _, auxiliaries in section.iter_versions():
                    for aux in auxiliaries:
                        match = GLIBC.match(aux.name)
                        if match:
                            version = (int(match[1]), int(match[2]))
                            highest = version if highest is None or version > highest else highest
        except ELFError:
            return None
    return machine, highest


def owners(tree: StagedTree) -> dict[str, str]:
    """path -> distribution name, for every staged file."""
    return {path: dist.name for dist in tree.distributions for path in dist.files}


def audit_elf(tree: StagedTree) -> AuditReport:
    """Every ELF object must be for the target's CPU and need no newer glibc than it has."""
    target: Target = tree.target
    expected = ELF_MACHINES[target.machine]
    owner = owners(tree)
    report = AuditReport()
    for directory, dirs, files in os.walk(tree.root):
        dirs.sort()
        for name in sorted(files):
            full = Path(directory, name)
            if full.is_symlink() or not full.is_file():
                continue
            info = read_elf(full)
            if info is None:
                continue
            path = full.relative_to(tree.root).as_posix()
            machine, glibc = info
            report.objects.append(ElfObject(path, machine, glibc))
            dist = owner.get(path, "?")
            if machine != expected:
                report.problems.append(f"{path} (from {dist}) is built for {machine}, not {expected}")
            if glibc and glibc > target.glibc:
                report.problems.append(
                    f"{path} (from {dist}) needs glibc {glibc[0]}.{glibc[1]}, "
                    f"but {target.describe()} has {target.glibc[0]}.{target.glibc[1]}"
                )
    if report.problems:
        shown = report.problems[:10]
        more = f" (and {len(report.problems) - 10} more)" if len(report.problems) > 10 else ""
        raise LambdaBuildError(
            f"the staged tree does not fit {target.describe()}:\n    " + "\n    ".join(shown) + more,
            "exclude the package (exclude-packages), pin a release with a wheel for this runtime, "
            'or build it in the Lambda image with installer = "docker"',
        )
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
    warn,
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
        "zipped uploads over 50 MB can go through S3 (raise max-zipped-mb, 250 MB unzipped still applies); "
        'or set size-check = "warn"'
    )
    if mode == "warn":
        warn(f"warning: {message}\n  {fix}")
        return
    raise LambdaBuildError(message, fix)
