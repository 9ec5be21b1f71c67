"""Stripping what Lambda never needs from one distribution's unpacked tree.

Default rules: ``__pycache__`` directories, ``*.pyc``/``*.pyo``, test
directories inside packages (``pkg/tests/``, ``pkg/sub/test/``), and
``.dist-info`` files other than ``METADATA``, ``entry_points.txt`` and licence
files, so ``importlib.metadata.version()`` and entry points keep working.
C/C++ headers and Cython sources (``*.h``, ``*.hpp``, ``*.pyx``, ``*.pxd``,
``*.pxi``: only a compiler reads them); identical extra copies of a shared
library that nothing loads by name go at assembly (see :mod:`hatch_lambda.assemble.duplicates`).
``strip-patterns`` adds gitignore-style patterns to drop; ``keep-patterns``
protects paths from every rule.

``strip-symbols`` (with ``strip``) then takes the symbol tables and debug
sections out of every ELF shared object and executable left, where the file's
layout allows it without moving a byte the loader reads
(:mod:`hatch_lambda.packs.symbols`); the others are left alone and counted.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from hatch_lambda.packs.symbols import strip_symbols

SYMBOLS = "symbols"  # the rule that takes symbol tables and debug sections out of ELF files
HEADERS = (".h", ".hh", ".hpp", ".hxx", ".pyx", ".pxd", ".pxi")
TEST_DIRS = frozenset({"tests", "test"})
KEEP_DIST_INFO = re.compile(
    r"^(METADATA|entry_points\.txt|(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*|licenses/.*)$", re.IGNORECASE
)


@dataclass
class PruneReport:
    files: int = 0
    bytes: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)  # rule -> bytes
    removed: list[str] = field(default_factory=list)  # posix paths, sorted
    symbols: dict[str, int] = field(default_factory=dict)  # ELF file -> bytes its symbols and debug sections took
    left_alone: list[str] = field(default_factory=list)  # ELF files whose layout allows no safe removal, sorted

    @classmethod
    def total(cls, reports: Iterable[PruneReport]) -> PruneReport:
        """Several reports (one per distribution, or per group of zips) as one."""
        out = cls()
        for report in reports:
            out.files += report.files
            out.bytes += report.bytes
            for rule, size in report.by_rule.items():
                out.by_rule[rule] = out.by_rule.get(rule, 0) + size
            out.removed.extend(report.removed)
            out.symbols.update(report.symbols)
            out.left_alone.extend(report.left_alone)
        out.removed.sort()
        out.left_alone.sort()
        return out

    def as_dict(self) -> dict:
        return {"files": self.files, "bytes": self.bytes, "by_rule": dict(self.by_rule), "removed": list(self.removed),
                "symbols": dict(self.symbols), "left_alone": list(self.left_alone)}

    def add(self, rule: str, path: str, size: int) -> None:
        self.files += 1
        self.bytes += size
        self.by_rule[rule] = self.by_rule.get(rule, 0) + size
        self.removed.append(path)

    def add_symbols(self, path: str, size: int) -> None:
        """``size`` bytes of symbol tables and debug sections taken out of the ELF file at ``path``."""
        self.bytes += size
        self.by_rule[SYMBOLS] = self.by_rule.get(SYMBOLS, 0) + size
        self.symbols[path] = size


def _spec(patterns: tuple[str, ...]) -> pathspec.PathSpec | None:
    return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None


def default_rule(path: str) -> str | None:
    """The default rule that removes ``path`` (posix, relative to the tree), if any."""
    parts = path.split("/")
    if "__pycache__" in parts[:-1]:
        return "__pycache__"
    if parts[-1].endswith((".pyc", ".pyo")):
        return "*.pyc"
    if parts[0].endswith(".dist-info"):
        inner = "/".join(parts[1:])
        return None if KEEP_DIST_INFO.match(inner) else "dist-info"
    if parts[-1].endswith(HEADERS):
        return "headers"
    # A test directory below a top-level package, never a top-level one.
    if any(part in TEST_DIRS for part in parts[1:-1]):
        return "tests"
    return None


def prune(root: Path, *, strip: bool = True, drop: tuple[str, ...] = (), keep: tuple[str, ...] = ()) -> PruneReport:
    """Remove files from ``root`` by the rules; empty directories go too.

    Identical library copies are judged later, across the whole artifact, as
    packs are assembled (:mod:`hatch_lambda.assemble.duplicates`).
    """
    report = PruneReport()
    drop_spec, keep_spec = _spec(drop), _spec(keep)
    if not strip and drop_spec is None:
        return report
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        relative_dir = Path(directory).relative_to(root).as_posix()
        for name in sorted(files):
            path = name if relative_dir == "." else f"{relative_dir}/{name}"
            rule = default_rule(path) if strip else None
            if rule is None and drop_spec is not None and drop_spec.match_file(path):
                rule = "strip-patterns"
            if rule is None or (keep_spec is not None and keep_spec.match_file(path)):
                continue
            full = Path(directory, name)
            report.add(rule, path, full.lstat().st_size)
            full.unlink()
    remove_empty_dirs(root)
    report.removed.sort()
    return report


def remove_empty_dirs(root: Path) -> None:
    for directory, _, _ in os.walk(root, topdown=False):
        if Path(directory) != root and not os.listdir(directory):
            os.rmdir(directory)


def strip_tree_symbols(root: Path, report: PruneReport, *, keep: tuple[str, ...] = (),
                       done: Callable[[Path, bytes], None] | None = None) -> None:
    """Take the symbol tables and debug sections out of every ELF file under ``root`` where that is safe.

    Each one is recorded in ``report``: the bytes it lost, or, when its layout
    allows no safe removal, its path among those left alone. A file is
    replaced whole (same mode), never written in place. ``done`` is given each
    ELF file's path and final contents as soon as it has them (the pack deflates
    it on other cores meanwhile).
    """
    keep_spec = _spec(keep)
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = Path(directory, name)
            path = full.relative_to(root).as_posix()
            if full.is_symlink() or (keep_spec is not None and keep_spec.match_file(path)):
                continue
            with full.open("rb") as handle:
                if handle.read(4) != b"\x7fELF":
                    continue
            data = full.read_bytes()
            result = strip_symbols(data)
            if result.outcome == "stripped":
                _replace(full, result.data)
                report.add_symbols(path, result.removed)
                data = result.data
            elif result.outcome == "layout":
                report.left_alone.append(path)
            if done is not None:
                done(full, data)
    report.left_alone.sort()


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path``'s new contents, keeping its mode."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, path.stat().st_mode & 0o7777)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
