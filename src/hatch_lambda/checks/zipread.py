"""A zip given to ``inspect`` or ``verify``, read as if it were hostile.

- Any archive error (not a zip, truncated, an encrypted member, a bad CRC, a
  compression method zipfile cannot read) is one :class:`LambdaBuildError`
  naming the zip: exit status 2.
- The declared sizes are judged before anything is read, by the rule the build
  applies to wheels (:func:`~hatch_lambda.packs.checks.declared_size_problem`:
  Lambda's 250 MB unzipped, a member compressed beyond 250:1). The bytes
  actually inflated are counted too, against the same cap, since headers can
  lie. Over the cap is an error naming the zip and the member.
- An entry that would land outside the directory it is unpacked into (``..``,
  absolute, a drive letter, a backslash, a symbolic link that points outside, a
  path through such a link) is an :class:`Unsafe` finding and is never written.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.packs.checks import MAX_UNPACKED_BYTES, declared_size_problem

#: What zipfile can inflate; anything else is an archive error.
READABLE = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated", zipfile.ZIP_BZIP2: "bzip2",
            zipfile.ZIP_LZMA: "lzma"}
CHUNK = 2**16
LINK_BYTES = 4096  # a symbolic link's target is a short path, never more
#: What zipfile raises on a damaged or unreadable archive (OSError only while opening it: after
#: that, an OSError is about the files being written).
ARCHIVE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, lzma.LZMAError,
                  NotImplementedError, RuntimeError, UnicodeDecodeError)
_DRIVE = re.compile(r"^[A-Za-z]:")
Wanted = Callable[[zipfile.ZipInfo, bytes], bool]


@dataclass(frozen=True)
class Unsafe:
    """An entry never extracted: it would land outside the directory the zip is unpacked into."""

    entry: str
    why: str

    @property
    def line(self) -> str:
        return f"{self.entry!r}: {self.why}; not extracted"

    def as_dict(self) -> dict[str, str]:
        return {"entry": self.entry, "why": self.why}


def damaged(path: Path, what: object) -> LambdaBuildError:
    return LambdaBuildError(
        f"{path} is not a readable zip: {what}",
        "build it again (or copy it again: it may be truncated or damaged); hatch-lambda reads zips that are "
        "not encrypted, stored or deflated",
    )


@contextmanager
def reading(path: Path) -> Iterator[zipfile.ZipFile]:
    """``path`` open as a zip; an archive error while it is read becomes one error naming it."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, *ARCHIVE_ERRORS) as exc:
        raise damaged(path, exc) from None
    try:
        with archive:
            yield archive
    except ARCHIVE_ERRORS as exc:
        raise damaged(path, exc) from None


def check_headers(path: Path, infos: list[zipfile.ZipInfo], limit: int = MAX_UNPACKED_BYTES) -> None:
    """Refuse, before reading any member: encryption, unreadable compression, declared sizes of a bomb."""
    for info in infos:
        if info.flag_bits & 0x1:
            raise damaged(path, f"{info.filename!r} is encrypted")
        if info.compress_type not in READABLE:
            raise damaged(path, f"{info.filename!r} is compressed with method {info.compress_type}, "
                                f"not one of {', '.join(READABLE.values())}")
    problem = declared_size_problem(infos, limit)
    if problem is not None:
        largest = max(infos, key=lambda info: info.file_size)
        if repr(largest.filename) not in problem:  # the total is too large: name the member that weighs most
            problem += f" (its largest member: {largest.filename!r}, {largest.file_size} bytes)"
        raise LambdaBuildError(
            f"{path} {problem}; refusing to unpack it",
            "Lambda unpacks at most 250 MB: this is not a zip hatch-lambda built; build the artifact again",
        )


def is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def unsafe_name(name: str) -> str | None:
    """Why an entry's name would put it outside the directory it is unpacked into, or None."""
    if "\\" in name:
        return "has a backslash, a path separator where the zip may be unpacked"
    if name.startswith("/"):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    if ".." in name.split("/"):
        return "climbs out of the zip's root with '..'"
    return None


def link_target(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[str | None, str | None]:
    """(target, None) of a symbolic link entry that stays inside the root, else (None, why)."""
    if info.file_size > LINK_BYTES:
        return None, f"is a symbolic link whose target is {info.file_size} bytes long"
    target = archive.read(info).decode("utf-8", "replace")
    where = posixpath.normpath(posixpath.join(posixpath.dirname(info.filename), target))
    if target.startswith("/") or "\\" in target or _DRIVE.match(target) or where == ".." or where.startswith("../"):
        return None, f"is a symbolic link to {target!r}, outside the zip's root"
    return target, None


def _inside(root: str, path: str) -> bool:
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


@dataclass
class _Unpacking:
    """One zip being unpacked into ``root``: what was inflated so far, and what was refused."""

    path: Path
    archive: zipfile.ZipFile
    root: str
    wanted: Wanted
    limit: int
    inflated: int = 0
    refused: set[str] = field(default_factory=set)  # unsafe entries so far: nothing goes under them either

    def member(self, info: zipfile.ZipInfo) -> str | None:
        """Unpack one member (or only read it through, checking its CRC); why it is unsafe, else None."""
        why = self._judge(info)
        if why is not None:
            self.refused.add(info.filename.rstrip("/"))
        return why

    def _judge(self, info: zipfile.ZipInfo) -> str | None:
        name = info.filename.rstrip("/")
        why = unsafe_name(info.filename)
        if why is not None or not name:
            return why or "has an empty name"
        parts = name.split("/")
        under = next((prefix for n in range(1, len(parts)) if (prefix := "/".join(parts[:n])) in self.refused), None)
        if under is not None:
            return f"lies under {under!r}, an entry left out as unsafe"
        target = os.path.join(self.root, *name.split("/"))
        if not _inside(self.root, os.path.dirname(target)):
            return "would be written through a symbolic link that leads outside the zip's root"
        if os.path.islink(target):
            return "would be written through the symbolic link of an earlier entry"
        if is_symlink(info):
            return self._link(info, target)
        if info.is_dir():
            os.makedirs(target, exist_ok=True)
            return None
        with self.archive.open(info) as source:
            head = self._read(source, info)
            keep = self.wanted(info, head)
            if keep:
                os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") if keep else open(os.devnull, "wb") as sink:
                while head:
                    sink.write(head)
                    head = self._read(source, info)
        return None

    def _link(self, info: zipfile.ZipInfo, target: str) -> str | None:
        link, why = link_target(self.archive, info)
        if link is None:
            return why
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not _inside(self.root, os.path.join(os.path.dirname(target), link)):
            return f"is a symbolic link to {link!r}, which leads outside the zip's root through another link"
        os.symlink(link, target)
        return None

    def _read(self, source: IO[bytes], info: zipfile.ZipInfo) -> bytes:
        chunk = source.read(CHUNK)
        self.inflated += len(chunk)
        if self.inflated > self.limit:
            raise LambdaBuildError(
                f"{self.path}: unpacking {info.filename!r} went past {self.limit / 2**20:.0f} MB, Lambda's limit "
                "unzipped (the zip's headers declare less); refusing to unpack it",
                "Lambda unpacks at most 250 MB: this is not a zip hatch-lambda built; build the artifact again",
            )
        return chunk


def unpack(
    path: Path,
    destination: Path,
    wanted: Wanted = lambda info, head: True,
    *,
    limit: int = MAX_UNPACKED_BYTES,
) -> list[Unsafe]:
    """Unpack the safe members of ``path`` into ``destination``; the unsafe ones, never written.

    Every member is read through (so a bad CRC anywhere is an error), but only
    those ``wanted`` (by their info and first bytes) are written. The symbolic
    links that stay inside are made, as Lambda makes them.
    """
    destination.mkdir(parents=True, exist_ok=True)
    unsafe = []
    with reading(path) as archive:
        infos = archive.infolist()
        check_headers(path, infos, limit)
        job = _Unpacking(path, archive, os.path.realpath(destination), wanted, limit)
        for info in infos:
            try:
                why = job.member(info)
            except OSError as exc:
                raise LambdaBuildError(f"cannot unpack {path} into {destination}: {exc}",
                                       "free space there (set TMPDIR to a directory with room)") from None
            if why is not None:
                unsafe.append(Unsafe(info.filename, why))
    return unsafe

