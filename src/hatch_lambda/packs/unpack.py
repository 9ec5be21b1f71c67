"""A wheel, checked and unpacked alone with pypa/installer into its own tree.

Absolute paths, ``..`` and symbolic links are refused first; scripts, headers
and data files go to a directory that is thrown away. No pip, no resolver:
exactly the lock's pins.
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from installer import install
from installer.destinations import SchemeDictionaryDestination
from installer.exceptions import InvalidWheelSource
from installer.records import RecordEntry
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
        with WheelFile.open(wheel.path) as source:
            install(source, destination, additional_metadata={"INSTALLER": b"hatch-lambda\n"})
            files = tuple(_installed_files(source, root))
    except DAMAGED as exc:  # check_wheel has read it whole: only a file changed since then gets here
        raise not_a_wheel(wheel.dist, wheel.path, exc) from None
    except InvalidWheelSource as exc:
        raise LambdaBuildError(
            f"{wheel.dist.pin}: {wheel.path.name} cannot be installed: {exc.args[-1] if exc.args else exc}",
            f"report it to the {wheel.dist.name} maintainers, or leave the package out with exclude-packages",
        ) from None
    return StagedDistribution(name=wheel.dist.name, version=wheel.dist.version, how=wheel.how, files=files)


def _installed_files(source: WheelFile, root: Path) -> Iterable[str]:
    """Paths the wheel put under ``root``, from its RECORD."""
    yield from installed_paths(source)
    yield f"{source.dist_info_dir}/INSTALLER"


def check_wheel(wheel: Wheel) -> dict[str, str]:
    """Every check a wheel passes before it is unpacked; the paths it installs -> RECORD hash."""
    try:
        check_wheel_entries(wheel.path, wheel.dist)
        check_declared_sizes(wheel.path, wheel.dist)
        with WheelFile.open(wheel.path) as source:
            check_schemes(source, wheel.path, wheel.dist)
            check_record(source, wheel.path, wheel.dist)
            return installed_paths(source)
    except DAMAGED as exc:
        raise not_a_wheel(wheel.dist, wheel.path, exc) from None
