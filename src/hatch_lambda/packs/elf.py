"""What hatch-lambda reads from an ELF file (with pyelftools): CPU, symbol versions, DT_NEEDED, DT_SONAME."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

SYMBOL_VERSION = re.compile(r"^(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)*)$")
LIBSTDCXX_NAME = "libstdc++.so.6"
DT_RELR_GLIBC = (2, 36)  # the first glibc whose loader reads DT_RELR (version GLIBC_ABI_DT_RELR)


@dataclass(frozen=True)
class ElfInfo:
    machine: str  # pyelftools' e_machine name, e.g. EM_X86_64
    glibc: tuple[int, int] | None  # highest GLIBC_x.y symbol version it needs
    cxx: dict[str, tuple[int, ...]]  # "GLIBCXX"/"CXXABI" -> highest version needed from libstdc++.so.6
    needed: tuple[str, ...]  # DT_NEEDED
    relr: bool = False  # needs GLIBC_ABI_DT_RELR
    soname: str | None = None  # DT_SONAME: the name the loader knows a shared library by

    def as_dict(self) -> dict:
        return {"machine": self.machine, "glibc": self.glibc, "cxx": self.cxx, "needed": self.needed,
                "relr": self.relr, "soname": self.soname}

    @classmethod
    def from_dict(cls, data: dict) -> ElfInfo:
        """The inverse of :meth:`as_dict` (after a JSON round trip)."""
        glibc = tuple(data["glibc"]) if data["glibc"] is not None else None
        cxx = {family: tuple(version) for family, version in data["cxx"].items()}
        return cls(data["machine"], glibc, cxx, tuple(data["needed"]), bool(data["relr"]), data.get("soname"))


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def elf_info(path: Path) -> ElfInfo | None:
    """What the audit needs to know of an ELF file, or None if it is not one."""
    with path.open("rb") as handle:
        if handle.read(4) != b"\x7fELF":
            return None
        handle.seek(0)
        try:
            elf = ELFFile(handle)
            machine = elf["e_machine"]
            glibc = None
            cxx: dict[str, tuple[int, ...]] = {}
            needed: list[str] = []
            soname = None
            relr = False
            for section in elf.iter_sections():
                if isinstance(section, DynamicSection):
                    for tag in section.iter_tags():
                        if tag.entry.d_tag == "DT_NEEDED":
                            needed.append(tag.needed)  # type: ignore[attr-defined]  # set by pyelftools per tag
                        elif tag.entry.d_tag == "DT_SONAME":
                            soname = tag.soname  # type: ignore[attr-defined]
                if not isinstance(section, GNUVerNeedSection):
                    continue
                for verneed, auxiliaries in section.iter_versions():
                    for aux in auxiliaries:
                        if aux.name == "GLIBC_ABI_DT_RELR":  # packed relative relocations: glibc 2.36
                            glibc = max(glibc or DT_RELR_GLIBC, DT_RELR_GLIBC)
                            relr = True
                            continue
                        match = SYMBOL_VERSION.match(aux.name)
                        if not match:
                            continue
                        family, version = match[1], _version(match[2])
                        if family == "GLIBC":
                            pair = (version[0], version[1] if len(version) >= 2 else 0)
                            glibc = pair if glibc is None or pair > glibc else glibc
                        elif verneed.name == LIBSTDCXX_NAME and version > cxx.get(family, ()):
                            cxx[family] = version
        except ELFError:
            return None
    return ElfInfo(machine, glibc, cxx, tuple(needed), relr, soname)


def read_elf(path: Path) -> tuple[str, tuple[int, int] | None] | None:
    """(machine, highest glibc needed) of an ELF file, or None if it is not one."""
    info = elf_info(path)
    return None if info is None else (info.machine, info.glibc)


def _elf_files(root: Path) -> tuple[list[tuple[str, Path]], set[str]]:
    """(relative path, path) of every regular file that may be ELF, and every file name in the tree."""
    files, names = [], set()
    for directory, dirs, entries in os.walk(root):
        dirs.sort()
        for name in sorted(entries):
            names.add(name)
            full = Path(directory, name)
            if full.is_symlink() or not full.is_file():
                continue
            files.append((full.relative_to(root).as_posix(), full))
    return files, names


def elf_objects(root: Path) -> tuple[list[tuple[str, ElfInfo]], set[str]]:
    """(relative path, what the audit needs to know) of every ELF object under ``root``, and every file name."""
    files, names = _elf_files(root)
    objects = [(path, info) for path, full in files if (info := elf_info(full)) is not None]
    return objects, names
