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

from .elf import elf_info

SHARED = re.compile(r"\.so(\.\d+)*$")


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
        info = elf_info(path)
        if info is not None:
            needed.update(info.needed)
    out = []
    mentioned = None
    for same in groups:
        info = elf_info(same[0])
        soname = info.soname if info is not None else None
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
