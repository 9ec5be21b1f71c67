"""Each file deflated once, with libdeflate, into what a zip entry holds; and back.

A pack keeps its files deflated, so assembling a zip from packs copies bytes
and deflates nothing again.

The encoder is libdeflate, bundled in the ``deflate`` wheel, so the bytes do
not depend on the system's zlib: on the spectra-demo layer (159 MiB of files)
its level 6 gives 2.6 % less than zlib-ng's level 6 in three quarters of the
time, and the same size as zlib-ng's 6 at its level 3 (see docs/development.md,
"Deflate"). A file that deflates by less than :data:`STORE_BELOW` is stored:
it costs a few bytes and saves inflating it on every unzip.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import deflate

COMPRESSION_LEVEL = 6
#: libdeflate's levels: 1-9 are greedy and lazy parsing; 10-12 near-optimal parsing (smaller, much slower).
MAX_LEVEL = 12
#: Stored, not deflated, when deflating saves less than this fraction of the file.
STORE_BELOW = 0.03
#: What the packs' bytes depend on besides the files and the level: the encoder and its version.
ENCODER = f"libdeflate (deflate {deflate.__version__})"


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
    data: bytes | bytearray | memoryview
    executable: bool


def compress(source: Path, level: int = COMPRESSION_LEVEL) -> Compressed:
    raw = source.read_bytes()
    executable = bool(source.stat().st_mode & 0o111)
    return compress_bytes(raw, level, executable)


def compress_bytes(raw: bytes, level: int = COMPRESSION_LEVEL, executable: bool = False) -> Compressed:
    """``raw`` deflated (raw deflate, as a zip entry holds it), or stored when that saves under STORE_BELOW."""
    data: bytes | bytearray = deflate.deflate_compress(raw, level) if raw else b""
    method = zipfile.ZIP_DEFLATED
    if len(data) >= len(raw) * (1 - STORE_BELOW):
        data, method = raw, zipfile.ZIP_STORED
    return Compressed(method, deflate.crc32(raw), len(raw), data, executable)


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
    return zlib.decompress(bytes(content.data), -15)
