"""Which distribution owns what in an artifact: recorded at build time, read back by ``inspect``.

Stripping drops ``RECORD``, so a finished zip no longer says which files each
distribution installed. The build records, in its ``manifest.json`` section,
each distribution's top-level names and what stripping removed from it;
``inspect`` uses that when the manifest sits beside the zip, and otherwise
falls back to what the zip's ``*.dist-info`` directories tell.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hatch_lambda.jsondata import Json
from hatch_lambda.packs.strip import PruneReport
from hatch_lambda.packs.unpack import StagedTree

OTHER = "(function code)"  # in a zip whose manifest lists every distribution
UNKNOWN = "(unattributed)"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def staged_sizes(tree: StagedTree) -> dict[str, int]:
    """path -> bytes of every staged file, taken before stripping."""
    out = {}
    for dist in tree.distributions:
        for path in dist.files:
            full = tree.root / path
            if full.is_file() and not full.is_symlink():
                out[path] = full.stat().st_size
    return out


@dataclass(frozen=True)
class DistributionContents(Json):
    """What one distribution put in an artifact, as the manifest records it."""

    version: str = ""
    top_level: list[str] = field(default_factory=list)  # names directly under site-packages
    modules: list[str] = field(default_factory=list)  # importable top-level modules among them
    stripped_files: int = 0
    stripped_bytes: int = 0  # files removed, and the symbols taken out of ELF files
    symbols_bytes: int = 0  # of which: ELF symbol tables and debug sections


def contents(tree: StagedTree, pruned: PruneReport, sizes: dict[str, int]) -> dict[str, DistributionContents]:
    """distribution -> what it put in a staged tree, and what stripping removed from it.

    ``sizes`` are the files' sizes before stripping (:func:`staged_sizes`).
    """
    owner = {path: dist.name for dist in tree.distributions for path in dist.files}
    removed: dict[str, list[str]] = {}
    for path in pruned.removed:
        if path in owner:
            removed.setdefault(owner[path], []).append(path)
    out = {}
    for dist in tree.distributions:
        tops = sorted({path.split("/", 1)[0] for path in dist.files})
        modules = sorted({name for top in tops if (name := module_name(tree.root / top)) is not None})
        gone = removed.get(dist.name, [])
        symbols = sum(size for path, size in pruned.symbols.items() if owner.get(path) == dist.name)
        out[dist.name] = DistributionContents(dist.version, tops, modules, len(gone),
                                              sum(sizes.get(path, 0) for path in gone) + symbols, symbols)
    return out


def owners_from_manifest(section_contents: dict[str, DistributionContents]) -> dict[str, str]:
    """top-level name -> distribution, from a manifest section's ``contents``."""
    out: dict[str, str] = {}
    for name, info in sorted(section_contents.items()):
        for top in info.top_level:
            out.setdefault(top, name)
    return out


def owners_from_dist_info(names: list[str], prefix: str, read: Callable[[str], bytes]
                          ) -> tuple[dict[str, str], dict[str, str]]:
    """(top-level name -> distribution, file -> distribution) from an artifact's own dist-info directories.

    ``names`` are the artifact's files, ``read`` returns one file's bytes.

    A ``RECORD`` (kept with ``strip = false``) lists every file; without it a
    top-level name is matched to the distribution of the same normalised name
    (``name``, ``name.libs``, ``_name``).
    """
    tops: dict[str, str] = {}
    files: dict[str, str] = {}
    for entry in names:
        rest = entry[len(prefix):] if entry.startswith(prefix) else None
        if rest is None or "/" not in rest:
            continue
        top, inner = rest.split("/", 1)
        if not top.endswith(".dist-info"):
            continue
        dist = top[: -len(".dist-info")].rsplit("-", 1)[0]
        tops[top] = dist
        if inner == "RECORD":
            text = read(entry).decode("utf-8", "replace")
            for row in csv.reader(io.StringIO(text)):
                if row:
                    files[prefix + row[0]] = dist
    by_name = {_normalize(dist): dist for dist in set(tops.values())}
    for entry in names:
        rest = entry[len(prefix):] if entry.startswith(prefix) else entry
        top = rest.split("/", 1)[0]
        if top in tops:
            continue
        stem = top.split(".", 1)[0]
        for candidate in (stem, stem.lstrip("_")):
            if _normalize(candidate) in by_name:
                tops[top] = by_name[_normalize(candidate)]
                break
    return tops, files


IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


NOT_PACKAGES = (".dist-info", ".data", ".libs", ".egg-info")


def module_name(entry: Path) -> str | None:
    """The top-level module a file or directory of a sys.path entry provides, if any."""
    if entry.is_dir():
        if entry.name.endswith(NOT_PACKAGES) or not IDENTIFIER.match(entry.name) or entry.name == "__pycache__":
            return None
        if (entry / "__init__.py").is_file() or any(
            name.endswith((".py", ".pyc", ".so")) for _, _, files in os.walk(entry) for name in files
        ):
            return entry.name  # a package, or a namespace package
        return None
    if entry.suffix in (".py", ".pyc", ".so"):  # .pyc: sourceless (bytecode = "only")
        stem = entry.name.split(".", 1)[0]
        if IDENTIFIER.match(stem) and not stem.startswith("__"):
            return stem
    return None


def top_level_modules(directory: Path) -> list[str]:
    """Importable top-level names in ``directory``: packages, namespace packages, modules, extensions."""
    if not directory.is_dir():
        return []
    return sorted({name for entry in directory.iterdir() if (name := module_name(entry)) is not None})
