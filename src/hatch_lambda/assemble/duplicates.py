"""Extra copies of one shared library, which wheels ship because they cannot hold symbolic links.

A wheel built with auditwheel or CMake often carries ``libfoo.so``,
``libfoo.so.26`` and ``libfoo.so.26.1.0`` as three identical files where an
installed system would have one file and two links. The dynamic loader only
ever opens a library by the name other objects list in ``DT_NEEDED``, which is
its ``DT_SONAME``. So of identical copies in one directory of the artifact, the
copy named after the SONAME stays, and the others go unless some ELF object of
the artifact needs them by name or some Python file of it names them (``ctypes``
loading by file name).

Judged once for the whole artifact, from what each pack recorded (its files'
sizes, CRCs and deflated bytes, its ELF objects, the library names its Python
files spell out), so a copy needed only by another distribution stays.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from pathspec import GitIgnoreSpec

from hatch_lambda.packs.pack import Pack

SHARED = re.compile(r"\.so(\.\d+)*$")


def duplicate_copies(packs: Iterable[Pack], keep: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """distribution -> paths (relative to site-packages) of library copies nothing loads; they may go."""
    packs = list(packs)
    groups: dict[tuple, list[tuple[Pack, str]]] = defaultdict(list)
    for pack in packs:
        for path, content in pack.files.items():
            directory, _, name = path.rpartition("/")
            if SHARED.search(name):
                groups[directory, content.size, content.crc, content.method, bytes(content.data)].append((pack, path))
    same_copies = [members for members in groups.values() if len(members) > 1]
    if not same_copies:
        return {}
    needed = {library for pack in packs for _, info in pack.elf for library in info.needed}
    infos = {(pack.name, path): info for pack in packs for path, info in pack.elf}
    mentions = {mention for pack in packs for mention in pack.mentions}
    protected = GitIgnoreSpec.from_lines(list(keep)) if keep else None
    out: dict[str, set[str]] = defaultdict(set)
    for members in same_copies:
        first, path = members[0]
        info = infos.get((first.name, path))
        soname = info.soname if info is not None else None
        if soname is None or not any(p.rpartition("/")[2] == soname for _, p in members):
            continue  # no copy is the one the loader looks for: leave them all
        for pack, path in members:
            name = path.rpartition("/")[2]
            if name == soname or name in needed or any(name in mention for mention in mentions):
                continue
            if protected is not None and protected.match_file(path):
                continue
            out[pack.name].add(path)
    return dict(out)
