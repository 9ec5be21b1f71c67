"""Checks a wheel must pass before any of it is unpacked.

- its declared sizes: more than Lambda's 250 MB unzipped limit in all, or one
  large member with a compression ratio no real file has, is a zip bomb;
- its RECORD: every member listed, with the right sha256 and size (pypa/installer
  checks it); a wheel whose RECORD lies was altered after it was built;
- its archive: a file that is not a readable zip (or whose members are damaged)
  is not a wheel, and a ``.data`` directory may only hold the schemes installers know;
- across wheels: two distributions installing the same path with different
  contents would silently overwrite each other.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from installer.records import parse_record_file
from installer.sources import WheelFile

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.resolve import Distribution

#: Lambda unpacks at most 250 MB (function and layers together): no wheel may declare more.
MAX_UNPACKED_BYTES = 250 * 2**20
#: A member this large that shrank more than MAX_RATIO times in the zip is not a real file.
RATIO_CHECK_BYTES = 2**20
MAX_RATIO = 250
#: What a wheel's ``<name>-<version>.data/`` directory may hold (the wheel spec's install schemes).
SCHEMES = ("purelib", "platlib", "scripts", "headers", "data")
#: What reading a damaged zip raises: no zip at all, a bad CRC, a truncated or garbled deflate stream.
DAMAGED = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, NotImplementedError)


def _refuse(dist: Distribution, path: Path, what: str) -> LambdaBuildError:
    return LambdaBuildError(
        f"{dist.pin}: {path.name} {what}; refusing to install it",
        f"report it to the {dist.name} maintainers, or leave the package out with exclude-packages",
    )


def declared_size_problem(infos: Iterable[zipfile.ZipInfo], limit: int = MAX_UNPACKED_BYTES) -> str | None:
    """What betrays a zip bomb in a zip's declared sizes (more than ``limit`` in all, or one member
    compressed beyond MAX_RATIO), or None. The wheels of a build and the zips ``inspect`` and
    ``verify`` unpack are judged by this one rule."""
    infos = list(infos)
    total = sum(info.file_size for info in infos)
    if total > limit:
        return f"would unpack to {total / 2**20:.0f} MB, more than Lambda's {limit / 2**20:.0f} MB limit"
    for info in infos:
        if info.file_size >= RATIO_CHECK_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            return (f"holds {info.filename!r}, compressed {ratio:.0f}:1 "
                    f"({info.file_size} bytes from {info.compress_size}), a zip bomb")
    return None


def not_a_wheel(dist: Distribution, path: Path, exc: BaseException) -> LambdaBuildError:
    """The error for a file named like a wheel that is not a readable zip archive."""
    where = f"the file {dist.source}" if dist.source_kind == "path" else f"{dist.name}'s file"
    return LambdaBuildError(
        f"{dist.pin}: {path.name} is not a wheel: it is not a readable zip archive ({str(exc) or type(exc).__name__}); "
        "refusing to install it",
        f"replace {where} with a real wheel and run `uv lock`, or leave the package out with exclude-packages",
    )


def check_schemes(source: WheelFile, path: Path, dist: Distribution) -> None:
    """Refuse a wheel whose ``.data`` directory holds a scheme no installer knows (pypa/installer would fail)."""
    data_dir = f"{source.data_dir}/"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    for name in names:
        if name.startswith(data_dir) and not name.endswith("/"):
            scheme = name[len(data_dir):].partition("/")[0]
            if scheme not in SCHEMES:
                raise _refuse(dist, path, f"puts {name!r} in the scheme {scheme!r} of its .data directory, "
                                          f"which no installer knows (only {', '.join(SCHEMES)})")


def check_declared_sizes(path: Path, dist: Distribution, limit: int = MAX_UNPACKED_BYTES) -> None:
    """Refuse a wheel that would unpack to more than ``limit`` bytes, or whose ratio betrays a bomb.

    zipfile never yields more than a member's declared size, so checking the
    declared sizes bounds what unpacking writes.
    """
    with zipfile.ZipFile(path) as archive:
        problem = declared_size_problem(archive.infolist(), limit)
    if problem is not None:
        raise _refuse(dist, path, problem)


def check_record(source: WheelFile, path: Path, dist: Distribution, *, contents: bool = True) -> None:
    """Refuse a wheel whose RECORD does not match its members: names, and with ``contents`` sha256 and sizes
    (without, the unpacking checks them as it reads each member once: see :mod:`.unpack`)."""
    try:
        source.validate_record(validate_contents=contents)
    except ValueError as exc:
        raise record_mismatch(dist, path, getattr(exc, "issues", None) or [str(exc)]) from None


def record_mismatch(dist: Distribution, path: Path, issues: list[str]) -> LambdaBuildError:
    """The error for a wheel whose members are not what its RECORD says (pypa/installer's wording of each)."""
    shown = "; ".join(issue.replace(f"In {path}, ", "") for issue in issues[:3])
    more = f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""
    return _refuse(dist, path, f"does not match its RECORD: {shown}{more}")


def installed_paths(source: WheelFile) -> dict[str, str]:
    """Path under site-packages -> RECORD hash, for what the wheel installs there."""
    data_dir = f"{source.data_dir}/"
    out = {}
    for name, digest, _ in parse_record_file(source.read_dist_info("RECORD").splitlines()):
        if name.startswith(data_dir):
            scheme, _, rest = name[len(data_dir):].partition("/")
            if scheme not in ("purelib", "platlib"):
                continue
            name = rest
        out[name] = digest
    return out


def check_no_overlap(wheels: Iterable[tuple[Distribution, Path, dict[str, str]]]) -> None:
    """Refuse two distributions that install one path with different contents (same bytes are fine)."""
    owner: dict[str, tuple[Distribution, Path, str]] = {}
    for dist, path, files in wheels:
        for name, digest in sorted(files.items()):
            previous = owner.get(name)
            if previous is None:
                owner[name] = (dist, path, digest)
                continue
            other, other_path, other_digest = previous
            if digest and digest == other_digest:
                continue
            raise LambdaBuildError(
                f"{other.pin} ({other_path.name}) and {dist.pin} ({path.name}) both install {name!r} "
                f"with different contents; one would overwrite the other",
                "leave one of them out with exclude-packages, or lock versions that do not clash",
            )
