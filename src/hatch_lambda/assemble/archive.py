"""Reproducible zips: same inputs, same bytes, on any machine.

Entries sorted, every timestamp from ``SOURCE_DATE_EPOCH`` (hatchling's fixed
default otherwise; a value that is not a whole number of seconds a zip can hold
is an error), modes normalised to 0644 / 0755 (executables and
directories), no extra fields. A zip is written to a temporary file and renamed
into place by the caller once the whole build has passed its checks.
"""

from __future__ import annotations

import base64
import os
import stat
import time
import zipfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from hatchling.builders.utils import get_reproducible_timestamp

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.hashing import file_sha256
from hatch_lambda.packs.deflate import COMPRESSION_LEVEL, Compressed, Entry, compress, inflate


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


#: The reproducible-builds variable that fixes every timestamp in the zips.
EPOCH_VARIABLE = "SOURCE_DATE_EPOCH"
#: 1980-01-01 and 2108-01-01 (UTC): a zip's dates start at the first and end before the second.
ZIP_FIRST = 315532800
ZIP_END = 4354819200


def zip_date_time(environ: Mapping[str, str] = os.environ) -> tuple[int, int, int, int, int, int]:
    """The date and time of every zip entry: ``SOURCE_DATE_EPOCH`` (earlier than 1980 is 1980), else hatchling's.

    The variable must be a whole number of seconds from 0 up to (not including) 2108;
    anything else is one error naming it, rather than a zip that cannot be written.
    """
    text = environ.get(EPOCH_VARIABLE, "").strip()
    if not text:
        return time.gmtime(max(get_reproducible_timestamp(), ZIP_FIRST))[:6]
    if not (text.isascii() and text.isdigit()) or int(text) >= ZIP_END:
        raise LambdaBuildError(
            f"the environment variable {EPOCH_VARIABLE} is {text!r}: it must be a whole number of seconds since "
            f"1970-01-01 UTC, from 0 to {ZIP_END - 1} (zip timestamps end in 2107; before 1980 counts as 1980)",
            f"set {EPOCH_VARIABLE} to such a number, e.g. `git log -1 --format=%ct`, or unset it",
        )
    return time.gmtime(max(int(text), ZIP_FIRST))[:6]


#: A directory entry's contents.
EMPTY = Compressed(zipfile.ZIP_STORED, 0, 0, b"", False)


def _info(name: str, mode: int, date_time: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
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


def write_zip(
    entries: Iterable[Entry],
    destination: Path,
    *,
    cache: dict[Path, Compressed] | None = None,
    level: int = COMPRESSION_LEVEL,
) -> WrittenZip:
    """Write ``entries`` (and their directories) to ``destination`` reproducibly.

    Files are deflated on every core at once (zlib releases the GIL), then
    written in name order. ``cache`` keeps deflated contents across zips that
    share files, as the fat zips of one build do.
    """
    by_name: dict[str, Entry] = {}
    for entry in entries:
        by_name[entry.name] = entry  # a later entry wins, as in an overlay
    cache = {} if cache is None else cache
    todo = sorted({e.source for e in by_name.values() if e.source not in cache})
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        cache.update(zip(todo, pool.map(partial(compress, level=level), todo), strict=True))
    return write_compressed({name: cache[entry.source] for name, entry in by_name.items()}, destination)


def write_compressed(contents: dict[str, Compressed], destination: Path) -> WrittenZip:
    """Write already-deflated files (name -> contents), and their directories, in name order.

    The bytes depend only on the names and contents, not on where the deflated
    data came from, so a zip assembled from cached entries equals a fresh one.
    """
    date_time = zip_date_time()
    unzipped = 0
    names = sorted([*contents, *directories(contents)])
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w") as archive:
        for name in names:
            if name.endswith("/"):
                # Appended as the files are, not with writestr: a Ctrl-C inside writestr leaves an entry's
                # handle open, and zipfile then raises over the interrupt when the archive closes.
                _write_compressed(archive, _info(name, stat.S_IFDIR | 0o755, date_time), EMPTY)
                continue
            content = contents[name]
            info = _info(name, stat.S_IFREG | (0o755 if content.executable else 0o644), date_time)
            _write_compressed(archive, info, content)
            unzipped += content.size
    return WrittenZip(
        path=destination,
        entries=len(names),
        zipped=destination.stat().st_size,
        unzipped=unzipped,
        sha256=file_sha256(destination),
    )


def _write_compressed(archive: zipfile.ZipFile, info: zipfile.ZipInfo, content: Compressed) -> None:
    """Append already-deflated data as one entry; zipfile writes the central directory on close.

    zipfile has no public call for this, so the entry is added the way
    ``ZipFile.writestr`` adds one, minus its (single-threaded) compression.
    """
    info.compress_type = content.method
    info.CRC = content.crc
    info.file_size = content.size
    info.compress_size = len(content.data)
    out = archive.fp
    assert out is not None, "the archive is open for writing"
    info.header_offset = out.tell()
    out.write(info.FileHeader(zip64=False))
    out.write(content.data)
    archive.start_dir = out.tell()
    archive.filelist.append(info)
    archive.NameToInfo[info.filename] = info
    archive._didModify = True  # type: ignore[attr-defined]  # what writestr sets, so close() writes the directory


def write_tree(contents: dict[str, Compressed], root: Path) -> None:
    """Write files (name -> contents) under ``root``, as an unzip would."""
    for name, content in sorted(contents.items()):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(inflate(content))
        if content.executable:
            path.chmod(0o755)
