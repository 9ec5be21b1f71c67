"""Reproducible zips: same inputs, same bytes, on any machine.

Entries sorted, every timestamp from ``SOURCE_DATE_EPOCH`` (hatchling's fixed
default otherwise), modes normalised to 0644 / 0755 (executables and
directories), no extra fields. A zip is written to a temporary file and renamed
into place by the caller once the whole build has passed its checks.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from hatchling.builders.utils import get_reproducible_timestamp

COMPRESSION_LEVEL = 9


@dataclass(frozen=True)
class Entry:
    """A file to put in a zip: its path inside the zip and where it is on disk."""

    name: str  # posix, no leading slash
    source: Path


@dataclass(frozen=True)
class WrittenZip:
    path: Path
    entries: int
    zipped: int  # bytes of the zip
    unzipped: int  # sum of file sizes inside
    sha256: str  # hex

    @property
    def sha256_base64(self) -> str:
        return base64.b64encode(bytes.fromhex(self.sha256)).decode()


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


def _date_time() -> tuple[int, int, int, int, int, int]:
    # Zip cannot store dates before 1980.
    stamp = max(get_reproducible_timestamp(), 315532800)
    return time.gmtime(stamp)[:6]


def _info(name: str, mode: int, date_time) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time)
    info.create_system = 3  # Unix, so the mode bits are read
    info.external_attr = mode << 16
    if not name.endswith("/"):
        info.compress_type = zipfile.ZIP_DEFLATED
    return info


def directories(names: Iterable[str]) -> set[str]:
    out = set()
    for name in names:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            out.add("/".join(parts[:depth]) + "/")
    return out


def write_zip(entries: Iterable[Entry], destination: Path) -> WrittenZip:
    """Write ``entries`` (and their directories) to ``destination`` reproducibly."""
    by_name: dict[str, Entry] = {}
    for entry in entries:
        by_name[entry.name] = entry  # a later entry wins, as in an overlay
    date_time = _date_time()
    unzipped = 0
    names = sorted([*by_name, *directories(by_name)])
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", compresslevel=COMPRESSION_LEVEL) as archive:
        for name in names:
            if name.endswith("/"):
                archive.writestr(_info(name, stat.S_IFDIR | 0o755, date_time), b"")
                continue
            source = by_name[name].source
            executable = source.stat().st_mode & 0o111
            info = _info(name, stat.S_IFREG | (0o755 if executable else 0o644), date_time)
            with source.open("rb") as src, archive.open(info, "w") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            unzipped += info.file_size
    digest = hashlib.sha256()
    with destination.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return WrittenZip(
        path=destination,
        entries=len(names),
        zipped=destination.stat().st_size,
        unzipped=unzipped,
        sha256=digest.hexdigest(),
    )
