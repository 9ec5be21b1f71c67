"""A wheel, checked and unpacked alone with pypa/installer into its own tree.

Absolute paths, ``..`` and symbolic links are refused first; scripts, headers
and data files go to a directory that is thrown away. No pip, no resolver:
exactly the lock's pins.
"""

from __future__ import annotations

import base64
import hashlib
import io
import stat
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, cast

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InvalidWheelSource
from installer.records import RecordEntry, parse_record_file
from installer.sources import WheelFile
from installer.utils import Scheme

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.builds import Wheel
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.packs.checks import (
    DAMAGED,
    check_declared_sizes,
    check_record,
    check_schemes,
    installed_paths,
    not_a_wheel,
    record_mismatch,
)
from hatch_lambda.runtime.target import Target


@dataclass(frozen=True)
class StagedDistribution:
    name: str
    version: str
    how: str  # "wheel", "built on host", "built in image", ...
    files: tuple[str, ...]  # posix paths relative to the staging root


@dataclass(frozen=True)
class StagedTree:
    """A site-packages tree holding every distribution a target needs."""

    root: Path
    target: Target
    distributions: tuple[StagedDistribution, ...]


def check_wheel_entries(path: Path, dist: Distribution) -> None:
    """Refuse absolute paths, ``..`` and symbolic links inside a wheel."""
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename
            parts = PurePosixPath(name).parts
            is_link = stat.S_ISLNK(info.external_attr >> 16)
            if name.startswith(("/", "\\")) or (parts and ":" in parts[0]) or ".." in parts or is_link:
                what = "a symbolic link" if is_link else "a path outside its install directory"
                raise LambdaBuildError(
                    f"{dist.pin}: {path.name} holds {what}: {name!r}; refusing to install it",
                    f"report it to the {dist.name} maintainers, or leave the package out with exclude-packages",
                )


class _StagingDestination(SchemeDictionaryDestination):
    """Writes RECORD without the scripts, headers and data files, which are not staged.

    Their RECORD lines would name the scratch directory they went to (a random
    temporary path), so the layer's bytes would differ from build to build.
    """

    def finalize_installation(self, scheme: Scheme, record_file_path: str,
                              records: Iterable[tuple[Scheme, RecordEntry]]) -> None:
        staged = [(file_scheme, record) for file_scheme, record in records if file_scheme in ("purelib", "platlib")]
        super().finalize_installation(scheme, record_file_path, staged)


def unpack(wheel: Wheel, root: Path, target: Target, discard: Path) -> StagedDistribution:
    """Unpack one wheel into ``root``; scripts, headers and data go to ``discard``."""
    check_wheel_entries(wheel.path, wheel.dist)
    scheme = {
        "purelib": str(root),
        "platlib": str(root),
        "headers": str(discard / "headers"),
        "scripts": str(discard / "bin"),
        "data": str(discard / "data"),
    }
    destination = _StagingDestination(
        scheme,
        interpreter=f"/var/lang/bin/python{target.python}",
        script_kind="posix",
        overwrite_existing=True,
    )
    try:
        with zipfile.ZipFile(wheel.path) as archive:
            source = _CheckedWheel(archive)
            install(source, destination, additional_metadata={"INSTALLER": b"hatch-lambda\n"})
            issues = source.unchecked_issues()
            if issues:
                raise record_mismatch(wheel.dist, wheel.path, issues)
            files = tuple(_installed_files(source, root))
    except DAMAGED as exc:  # a member that is not a readable deflate stream, or fails its CRC
        raise not_a_wheel(wheel.dist, wheel.path, exc) from None
    except InvalidWheelSource as exc:
        raise LambdaBuildError(
            f"{wheel.dist.pin}: {wheel.path.name} cannot be installed: {exc.args[-1] if exc.args else exc}",
            f"report it to the {wheel.dist.name} maintainers, or leave the package out with exclude-packages",
        ) from None
    return StagedDistribution(name=wheel.dist.name, version=wheel.dist.version, how=wheel.how, files=files)


class _CheckedWheel(WheelFile):
    """A wheel whose members are checked against its RECORD (hash and size) as pypa/installer reads them.

    A member read to its end is judged there; one installer reads otherwise (a script, whose first line it
    rewrites) or not at all (a file under ``__pycache__``) is read again afterwards by
    :meth:`unchecked_issues`. Every mismatch is an issue worded as pypa/installer's ``validate_record`` words it.
    """

    def __init__(self, f: zipfile.ZipFile) -> None:
        super().__init__(f)
        self.issues: list[str] = []
        self.checked: set[str] = set()

    def get_contents(self) -> Iterator[tuple[tuple[str, str, str], BinaryIO, bool]]:
        scripts = f"{self.data_dir}/scripts/"
        for elements, stream, executable in super().get_contents():
            name, digest, size = elements
            if not digest or not size or name.startswith(scripts):
                yield elements, stream, executable
                continue
            hashing = _Hashing(stream, RecordEntry.from_elements(name, digest, size), self)
            yield elements, cast(BinaryIO, hashing), executable

    def unchecked_issues(self) -> list[str]:
        """The issues, after every member not judged while it was read has been read and judged."""
        record = {name: (name, digest, size) for name, digest, size in
                  parse_record_file(self.read_dist_info("RECORD").splitlines())}
        for item in self._zipfile.infolist():
            elements = record.get(item.filename)
            if item.filename in self.checked or elements is None or not elements[1]:
                continue  # judged already; or not in RECORD, or RECORD itself: check_wheel judged that
            with self._zipfile.open(item) as stream:
                if not RecordEntry.from_elements(*elements).validate_stream(cast(BinaryIO, stream)):
                    self.issues.append(self._mismatch(item.filename))
        return self.issues

    def _mismatch(self, name: str) -> str:
        return f"In {self._zipfile.filename}, hash / size of {name} didn't match RECORD"


class _Hashing(io.RawIOBase):
    """A member's stream that hashes what is read; at its end, the member is judged against its RECORD entry."""

    def __init__(self, stream: BinaryIO, entry: RecordEntry, wheel: _CheckedWheel) -> None:
        super().__init__()
        assert entry.hash_ is not None
        self.stream, self.entry, self.wheel = stream, entry, wheel
        self.digest = hashlib.new(entry.hash_.name)
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if data:
            self.digest.update(data)
            self.size += len(data)
        elif size != 0:
            self._judge()
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _judge(self) -> None:
        if self.entry.path in self.wheel.checked:
            return
        self.wheel.checked.add(self.entry.path)
        assert self.entry.hash_ is not None
        value = base64.urlsafe_b64encode(self.digest.digest()).decode("ascii").rstrip("=")
        if value != self.entry.hash_.value or self.size != self.entry.size:
            self.wheel.issues.append(self.wheel._mismatch(self.entry.path))


def _installed_files(source: WheelFile, root: Path) -> Iterable[str]:
    """Paths the wheel put under ``root``, from its RECORD."""
    yield from installed_paths(source)
    yield f"{source.dist_info_dir}/INSTALLER"


def check_wheel(wheel: Wheel, *, contents: bool = True) -> dict[str, str]:
    """Every check a wheel passes before it is unpacked; the paths it installs -> RECORD hash.

    ``contents=False`` leaves the members' hashes and sizes to :func:`unpack`, which checks each as it reads it,
    so that a wheel is inflated once, not twice (on pyarrow's 52 MB wheel that is about 0.7 s of one core).
    """
    try:
        check_wheel_entries(wheel.path, wheel.dist)
        check_declared_sizes(wheel.path, wheel.dist)
        with WheelFile.open(wheel.path) as source:
            check_schemes(source, wheel.path, wheel.dist)
            check_record(source, wheel.path, wheel.dist, contents=contents)
            return installed_paths(source)
    except DAMAGED as exc:
        raise not_a_wheel(wheel.dist, wheel.path, exc) from None
