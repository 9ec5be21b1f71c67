"""Each file deflated once, with zlib-ng, into what a zip entry holds; and back.

A pack keeps its files deflated, so assembling a zip from packs copies bytes
and deflates nothing again.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from zlib_ng import zlib_ng

# zlib-ng deflates 2.5x faster than zlib at the same level (about 2% larger at 6); bundled with
# its wheel, so its output does not depend on the system's zlib either.
COMPRESSION_LEVEL = 6


@dataclass(frozen=True)
class Entry:
    """A file to put in a zip: its path inside the zip and where it is on disk."""

    name: str  # posix, no leading slash
    source: Path


def tree_entries(root: Path, prefix: str = "") -> list[Entry]:
    """Every file under ``root`` (symbolic links are refused by the installer)."""
    out = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        relative = Path(directory).relative_to(root).as_posix()
        for name in files:
            path = name if relative == "." else f"{relative}/{name}"
            out.append(Entry(prefix + path, Path(directory, name)))
    return out


@dataclass(frozen=True)
class Compressed:
    """One file's contents, deflated once (or stored when deflating does not help)."""

    method: int  # zipfile.ZIP_DEFLATED or zipfile.ZIP_STORED
    crc: int
    size: int
    data: bytes | memoryview
    executable: bool


def compress(source: Path, level: int = COMPRESSION_LEVEL) -> Compressed:
    raw = source.read_bytes()
    deflater = zlib_ng.compressobj(level, zlib_ng.DEFLATED, -15)
    data = deflater.compress(raw) + deflater.flush()
    method = zipfile.ZIP_DEFLATED
    if len(data) >= len(raw):
        data, method = raw, zipfile.ZIP_STORED
    executable = bool(source.stat().st_mode & 0o111)
    return Compressed(method, zlib_ng.crc32(raw), len(raw), data, executable)


def compress_entries(entries: Iterable[Entry], level: int = COMPRESSION_LEVEL) -> dict[str, Compressed]:
    """name -> deflated contents, on every core; a later entry with the same name wins."""
    by_name = {entry.name: entry for entry in entries}
    names = sorted(by_name)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        sources = [by_name[n].source for n in names]
        return dict(zip(names, pool.map(partial(compress, level=level), sources), strict=True))


def inflate(content: Compressed) -> bytes:
    """The file a :class:`Compressed` holds."""
    if content.method == zipfile.ZIP_STORED:
        return bytes(content.data)
    return zlib_ng.decompress(bytes(content.data), -15)
