"""The strings of ``uv.lock`` that become paths or names, checked when a package is read.

A lock comes in through pull requests and CI builds it, so nothing in it is
trusted to be what uv wrote. Before any of it is joined to a path:

- a package name is a valid distribution name (it names scratch directories);
- a file's ``hash`` is an algorithm and that many hex digits
  (``sha256:`` + 64), the sha256 names the file's cache directory;
- a file name is one plain path component: no ``/``, ``\\``, NUL or other control character, no ``.`` or
  ``..``, no percent-encoded separator or ``..`` (``%2F``, ``%5C``, ``%2E%2E``,
  ``%00``, also after one more unquote); a URL's last segment, unquoted, is
  held to the same rule, and the file's ``filename`` must equal it;
- a wheel's name and version (and a registry sdist's) are the entry's, so a
  lock cannot install ``evil 6.6`` and report ``good 1.0``;
- an archive's ``subdirectory`` is relative and stays inside the archive.

A local file's ``path`` (a path source, a flat index on disk) may hold ``/``
and ``..``: it is read where the lock's directory says, never written, and
its last component is still the file name the rules above apply to.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from hatch_lambda.errors import LambdaBuildError

#: The digests uv records, by algorithm: how many hex digits each has.
HEX_DIGITS = {"sha256": 64, "sha384": 96, "sha512": 128, "md5": 32}
HASH = re.compile(r"^(sha256|sha384|sha512|md5):([0-9a-fA-F]+)$")
NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
ENCODED = re.compile(r"%(2f|5c|00)|%2e%2e|%2e\.|\.%2e", re.IGNORECASE)
SDIST_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tar.zst", ".tar.lz", ".tar.lzma", ".tgz", ".tbz",
                  ".txz", ".tlz", ".tar")
REWRITE = "this lock was not written by uv: run `uv lock` again and review the change"


def file_table(file: dict, source: dict | None) -> dict:
    """A lock's file table with its location: for a url or path source uv writes the file without one
    (an sdist as just ``{ hash = ... }``, a wheel as ``{ filename, hash }``), the file is the source itself."""
    if source and not file.get("url") and not file.get("path"):
        if "url" in source:
            return {**file, "url": source["url"]}
        if "path" in source:
            return {**file, "path": source["path"]}
    return file


def last_segment(location: str) -> str:
    """The unquoted last segment of a URL's or a path's path: the file's name."""
    head, slash, tail = location.rpartition("/")
    if slash and not head.endswith("/") and "?" not in location and "#" not in location and not CONTROL.search(
            location):
        return unquote(tail)  # what urlsplit would say, told faster (a large lock has thousands)
    return unquote(urlsplit(location).path.rsplit("/", 1)[-1])


def file_name(file: dict) -> str:
    """The name of a located file table (:func:`file_table`): its ``filename``, else its location's last
    segment."""
    if "filename" in file:
        return file["filename"]
    return last_segment(file.get("url") or file.get("path") or "")


def plain_name_problem(name: str) -> str | None:
    """Why ``name`` is not one plain path component, or None when it is."""
    if name in ("", ".", ".."):
        return "is not a file name"
    if "\0" in name:
        return "holds NUL"
    for char in "/\\":
        if char in name:
            return f"holds {char}"
    if CONTROL.search(name):
        return "holds a control character"
    if ENCODED.search(name) or ENCODED.search(unquote(name)):
        return "holds a percent-encoded separator or .."
    once = unquote(name)
    if once in (".", "..") or any(char in once for char in "/\\\0"):
        return "holds a percent-encoded separator or .."
    return None


def check_package(entry: dict, index: int, path: Path) -> None:
    """Raise a :class:`LambdaBuildError` for the first string of one ``[[package]]`` table that is not safe."""
    name = entry["name"]
    where = f"{path}: package[{index}]"
    if not NAME.match(name):
        raise LambdaBuildError(f"{where}: name {_shown(name)} is not a valid package name", REWRITE)
    label = f"{where} ({name} {entry.get('version', '')}".rstrip() + ")"
    source = entry.get("source", {})
    subdirectory = source.get("subdirectory")
    if subdirectory is not None and (not isinstance(subdirectory, str) or _escapes(subdirectory)):
        raise LambdaBuildError(f"{label}: source.subdirectory {_shown(subdirectory)} is not a directory inside "
                               "the archive", REWRITE)
    files = [(f"wheels[{i}]", "wheel", wheel) for i, wheel in enumerate(entry.get("wheels", []))]
    if "sdist" in entry:
        files.append(("sdist", "sdist", entry["sdist"]))
    for key, kind, file in files:
        _check_file(entry, label, key, kind, file_table(file, source))


def _parses(location: str) -> bool:
    if location.isascii() and "[" not in location and "]" not in location:
        return True  # nothing urlsplit could refuse
    try:
        urlsplit(location)
    except ValueError:  # a bad IPv6 address, a host that normalizes to a separator
        return False
    return True


def _escapes(subdirectory: str) -> bool:
    parts = PurePosixPath(subdirectory).parts
    return (subdirectory.startswith(("/", "\\")) or "\\" in subdirectory or "\0" in subdirectory
            or ".." in parts or (len(subdirectory) > 1 and subdirectory[1] == ":"))


def _check_file(entry: dict, label: str, key: str, kind: str, file: dict) -> None:
    digest = file.get("hash")
    if digest is not None:
        match = HASH.match(digest)
        if match is None or len(match.group(2)) != HEX_DIGITS[match.group(1)]:
            raise LambdaBuildError(f"{label}: {key}.hash {_shown(digest)} is not sha256: and 64 hex digits",
                                   REWRITE)
    if "filename" in file:
        problem = plain_name_problem(file["filename"])
        if problem:
            raise LambdaBuildError(f"{label}: {key}.filename {_shown(file['filename'])} {problem}", REWRITE)
    name = file.get("filename")
    for location in ("url", "path"):
        if location not in file:
            continue
        if not _parses(file[location]):
            raise LambdaBuildError(f"{label}: {key}.{location} {_shown(file[location])} is not a valid URL", REWRITE)
        segment = last_segment(file[location])
        problem = plain_name_problem(segment)
        if problem:
            raise LambdaBuildError(f"{label}: {key}.{location} {_shown(file[location])} does not end in a file "
                                   f"name: its last segment {_shown(segment)} {problem}", REWRITE)
        if name is None:
            name = segment
        elif name != segment:
            raise LambdaBuildError(f"{label}: {key}.filename {_shown(name)} is not the file the "
                                   f"{location} names ({_shown(segment)})", REWRITE)
    if name is None:
        return  # no location at all: nothing is fetched for it (and the fetch says so)
    if kind == "wheel":
        _check_wheel_name(entry, label, key, name)
    elif "registry" in entry.get("source", {}):
        # A URL or path source's archive may have any name (a GitHub archive is ``main.zip``).
        _check_sdist_name(entry, label, key, name)


def _version(entry: dict, label: str) -> Version | None:
    text = entry.get("version")
    if text is None:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        raise LambdaBuildError(f"{label}: version {_shown(text)} is not a valid version", REWRITE) from None


def _check_wheel_name(entry: dict, label: str, key: str, name: str) -> None:
    parts = name.removesuffix(".whl").split("-")
    if (name.endswith(".whl") and len(parts) in (5, 6) and parts[1] == entry.get("version")
            and canonicalize_name(parts[0]) == canonicalize_name(entry["name"])):
        return  # what uv writes, told without parsing the tags (most of a large lock's files are wheels)
    try:
        wheel_name, wheel_version, _, _ = parse_wheel_filename(name)
    except (InvalidWheelFilename, InvalidVersion) as exc:
        raise LambdaBuildError(f"{label}: {key} {_shown(name)} is not a valid wheel file name ({exc})",
                               REWRITE) from None
    _same(entry, label, key, name, wheel_name, wheel_version)


def _check_sdist_name(entry: dict, label: str, key: str, name: str) -> None:
    """The sdist's name and version, split as uv splits them: the first prefix that is the entry's name."""
    stem = next((name[: -len(s)] for s in SDIST_SUFFIXES if name.lower().endswith(s)), None)
    if stem is None:
        raise LambdaBuildError(f"{label}: {key} {_shown(name)} is not an sdist file name "
                               f"(one of {', '.join(SDIST_SUFFIXES[:3])}, ...)", REWRITE)
    wanted = canonicalize_name(entry["name"])
    for position in (i for i, char in enumerate(stem) if char == "-"):
        if canonicalize_name(stem[:position]) == wanted:
            try:
                version = Version(stem[position + 1:])
            except InvalidVersion:
                break
            _same(entry, label, key, name, stem[:position], version)
            return
    raise LambdaBuildError(f"{label}: {key} {_shown(name)} is not an sdist of "
                           f"{entry['name']} {entry.get('version', '')}".rstrip(), REWRITE)


def _same(entry: dict, label: str, key: str, name: str, file_name: str, file_version: Version) -> None:
    version = _version(entry, label)
    if canonicalize_name(file_name) != canonicalize_name(entry["name"]) or (
            version is not None and file_version != version):
        raise LambdaBuildError(f"{label}: {key} {_shown(name)} is {file_name} {file_version}, "
                               f"not {entry['name']} {entry.get('version', '')}".rstrip(), REWRITE)


def _shown(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 120 else shown[:117] + "..."
