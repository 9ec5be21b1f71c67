"""Extra copies of one shared library, which wheels ship because they cannot hold symbolic links.

A wheel built with auditwheel or CMake often carries ``libfoo.so``,
``libfoo.so.26`` and ``libfoo.so.26.1.0`` as three identical files where an
installed system would have one file and two links. The dynamic loader only
ever opens a library by the name other objects list in ``DT_NEEDED``, which is
its ``DT_SONAME``. So of identical copies in one directory, the copy named
after the SONAME stays, and the others go unless some ELF object in the tree
needs them by name or some Python file of the tree names them (``ctypes``
loading by file name).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

SHARED = re.compile(r"\.so(\.\d+)*$")


def dynamic_names(path: Path) -> tuple[str | None, set[str]] | None:
    """(SONAME, DT_NEEDED names) of an ELF file, or None if it is not one."""
    with path.open("rb") as handle:
        if handle.read(4) != b"\x7fELF":
            return None
        handle.seek(0)
        try:
            elf = ELFFile(handle)
            soname, needed = None, set()
            for section in elf.iter_sections():
                if not isinstance(section, DynamicSection):
                    continue
                for tag in section.iter_tags():
                    if tag.entry.d_tag == "DT_SONAME":
                        soname = tag.soname
                    elif tag.entry.d_tag == "DT_NEEDED":
                        needed.add(tag.needed)
        except ELFError:
            return None
    return soname, needed


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def duplicate_libraries(root: Path) -> list[str]:
    """Paths (posix, relative to ``root``) of shared-library copies nothing loads; they may go."""
    by_size: dict[tuple[str, int], list[Path]] = defaultdict(list)
    elves: list[Path] = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = Path(directory, name)
            if SHARED.search(name) and not full.is_symlink():
                by_size[directory, full.stat().st_size].append(full)
            if name.endswith(".so") or SHARED.search(name):
                elves.append(full)
    groups = []
    for candidates in by_size.values():
        if len(candidates) < 2:
            continue
        by_digest: dict[str, list[Path]] = defaultdict(list)
        for path in candidates:
            by_digest[_digest(path)].append(path)
        groups += [same for same in by_digest.values() if len(same) > 1]
    if not groups:
        return []
    needed: set[str] = set()
    for path in elves:
        names = dynamic_names(path)
        if names:
            needed |= names[1]
    out = []
    mentioned = None
    for same in groups:
        names = dynamic_names(same[0])
        soname = names[0] if names else None
        if soname is None or not any(p.name == soname for p in same):
            continue  # no copy is the one the loader looks for: leave them all
        extra = [p for p in same if p.name != soname and p.name not in needed]
        if extra and mentioned is None:
            mentioned = _python_text(root)
        out += [p.relative_to(root).as_posix() for p in extra if p.name.encode() not in mentioned]
    return sorted(out)


def _python_text(root: Path) -> bytes:
    """Every Python file of the tree, concatenated: a library named in one is kept."""
    chunks = []
    for directory, _, files in os.walk(root):
        chunks += [Path(directory, n).read_bytes() for n in files if n.endswith(".py")]
    return b"\n".join(chunks)
