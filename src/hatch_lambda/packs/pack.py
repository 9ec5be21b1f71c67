"""One distribution, unpacked, checked, stripped, ELF-read and deflated once: a pack.

A pack holds the deflated bytes of every file one distribution leaves after
stripping, with their names (relative to site-packages), CRCs and sizes, and
the facts the whole-set checks need (its RECORD for path clashes, its ELF
objects for the audit and the duplicate libraries, the library names its
Python files mention). Every distribution becomes one: a wheel is unpacked with
pypa/installer, or, with ``installer = "docker"``, installed by pip inside the
Lambda image into a directory of its own. Zips are only ever assembled from
packs (:mod:`hatch_lambda.assemble.zips`), by copying deflated bytes.

Its key is everything that determines those bytes: the wheel's sha256 and file
name, how it was installed (this machine, or which image), the target, the
strip rules, the compression level, the bytecode mode and the exact version of
the CPython that compiled it, and hatch-lambda's version and code. A pack
is a cache entry (:mod:`hatch_lambda.cache.entry`): reading one checks the
sha256 of its data and its key, and one that fails is discarded and built again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.cache.store import key_of
from hatch_lambda.config.options import LambdaConfig
from hatch_lambda.fetch.builds import Wheel
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.packs.bytecode import compile_tree
from hatch_lambda.packs.contents import DistributionContents, contents, staged_sizes
from hatch_lambda.packs.deflate import ENCODER, Compressed, compress, compress_bytes, tree_entries
from hatch_lambda.packs.elf import ElfInfo, elf_objects
from hatch_lambda.packs.strip import PruneReport, prune, strip_tree_symbols
from hatch_lambda.packs.unpack import (
    StagedDistribution,
    StagedTree,
    check_wheel,
    unpack,
)
from hatch_lambda.runtime.interpreters import Compiler
from hatch_lambda.runtime.target import Target

INDEX = "index.json"
DATA = "data"
#: What a shared library's name, as Python code may spell it to load it by file name (ctypes), is made of:
#: a run of these characters holding ``.so``.
NAME_CHARACTERS = re.compile(rb"[\w.+-]*")
_NAME_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.+-")


@dataclass(frozen=True)
class PackSpec:
    """What decides a pack's bytes besides its wheel: the target, the strip rules, the deflate level, and
    the bytecode: its mode and the compiler (``bytecode`` is "off" without one)."""

    python: str
    arch: str
    strip: bool
    strip_patterns: tuple[str, ...]
    keep_patterns: tuple[str, ...]
    level: int
    strip_symbols: bool = True  # ELF symbol tables and debug sections out (only with strip)
    bytecode: str = "off"
    compiler: Compiler | None = None

    @classmethod
    def of(cls, config: LambdaConfig, compiler: Compiler | None = None) -> PackSpec:
        """The spec of ``config``'s packs; their bytecode compiled by ``compiler`` (none: no bytecode)."""
        mode = config.bytecode if compiler is not None else "off"
        return cls(config.target.python, config.target.arch, config.strip, config.strip_patterns,
                   config.keep_patterns, config.compression_level, config.strip_symbols, mode,
                   compiler if mode != "off" else None)

    @property
    def compiler_release(self) -> str:
        """The exact version of the CPython that compiles the bytecode ("3.12.8"), or "" without bytecode."""
        return self.compiler.release if self.compiler is not None else ""

    @property
    def target(self) -> Target:
        return Target(self.python, self.arch)


@dataclass(frozen=True)
class Pack:
    """One distribution's files, deflated: name (relative to site-packages) -> contents."""

    key: str
    name: str
    version: str
    files: dict[str, Compressed]
    pruned: PruneReport
    installed_bytes: int  # sum of file sizes after stripping
    reused: bool  # read from the cache rather than built now
    record: dict[str, str]  # path the wheel installs -> its RECORD hash (for the overlap check)
    elf: tuple[tuple[str, ElfInfo], ...]  # every ELF object left after stripping, for the audit
    contents: DistributionContents  # the manifest's entry for this distribution
    mentions: tuple[str, ...] = ()  # shared-library names its Python files spell out (kept by the duplicate rule)
    wheel: str = ""  # the file name of the wheel it was made from


def pack_key(spec: PackSpec, wheel_sha256: str, filename: str, installer: str = "host") -> str:
    return key_of({
        "kind": "pack",
        "wheel": wheel_sha256,
        "filename": filename,
        "installer": installer,
        "python": spec.python,
        "arch": spec.arch,
        "strip": spec.strip,
        "strip-symbols": spec.strip and spec.strip_symbols,
        "strip-patterns": list(spec.strip_patterns),
        "keep-patterns": list(spec.keep_patterns),
        "level": spec.level,
        "encoder": ENCODER,
        "bytecode": spec.bytecode,
        "compiler": spec.compiler_release,
    })


def load(directory: Path, key: str) -> Pack | None:
    """The pack stored in ``directory``, or None if it is missing or fails its check."""
    try:
        index = json.loads((directory / INDEX).read_text())
        data = (directory / DATA).read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("key") != key:
        return None
    if hashlib.sha256(data).hexdigest() != index.get("sha256"):
        return None
    view = memoryview(data)
    files = {}
    try:
        for name, method, crc, size, offset, length, executable in index["files"]:
            if offset + length > len(data):
                return None
            files[name] = Compressed(method, crc, size, view[offset:offset + length], bool(executable))
        pruned = PruneReport(**index["pruned"])
        elf = tuple((path, ElfInfo.from_dict(info)) for path, info in index["elf"])
        return Pack(key, index["name"], index["version"], files, pruned, index["installed_bytes"], True,
                    dict(index["record"]), elf, DistributionContents.from_json(index["contents"]),
                    tuple(index["mentions"]), index["wheel"])
    except (KeyError, TypeError, ValueError):
        return None


def write(directory: Path, pack: Pack) -> None:
    """Write ``pack`` into the (temporary) directory of its cache entry."""
    rows, offset, digest = [], 0, hashlib.sha256()
    with (directory / DATA).open("wb") as out:
        for name in sorted(pack.files):
            content = pack.files[name]
            out.write(content.data)
            digest.update(content.data)
            rows.append([name, content.method, content.crc, content.size, offset, len(content.data),
                         int(content.executable)])
            offset += len(content.data)
    index = {
        "key": pack.key,
        "name": pack.name,
        "version": pack.version,
        "wheel": pack.wheel,
        "sha256": digest.hexdigest(),
        "installed_bytes": pack.installed_bytes,
        "pruned": pack.pruned.as_dict(),
        "files": rows,
        "record": pack.record,
        "elf": [[path, info.as_dict()] for path, info in pack.elf],
        "contents": pack.contents.to_json(),
        "mentions": list(pack.mentions),
    }
    (directory / INDEX).write_text(json.dumps(index, separators=(",", ":")))


def library_mentions(root: Path) -> tuple[str, ...]:
    """Every shared-library-like name the Python files under ``root`` spell out."""
    found: set[str] = set()
    for directory, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                spelled = spelled_libraries(Path(directory, name).read_bytes())
                found.update(m.decode("utf-8", "replace") for m in spelled)
    return tuple(sorted(found))


def spelled_libraries(text: bytes) -> list[bytes]:
    """Each run of NAME_CHARACTERS in ``text`` that holds ``.so``, found from the ``.so`` outwards (a regular
    expression that tries every position costs 40 times as much on botocore's sources)."""
    found = []
    at = text.find(b".so")
    while at != -1:
        start = at
        while start > 0 and text[start - 1] in _NAME_BYTES:
            start -= 1
        end = NAME_CHARACTERS.match(text, at + 3).end()  # type: ignore[union-attr]  # matches the empty run
        found.append(text[start:end])
        at = text.find(b".so", end)
    return found


def pack_from_tree(spec: PackSpec, key: str, root: Path, staged: StagedDistribution, record: dict[str, str],
                   wheel: str, pool: ThreadPoolExecutor) -> Pack:
    """The pack of one distribution installed alone under ``root``: stripped, ELF-read, deflated."""
    tree = StagedTree(root=root, target=spec.target, distributions=(staged,))
    sizes = staged_sizes(tree)
    # Duplicate libraries are judged at assembly, across every distribution of the artifact.
    pruned = prune(root, strip=spec.strip, drop=spec.strip_patterns, keep=spec.keep_patterns)
    early: dict[Path, Future[Compressed]] = {}  # shared objects, deflated on the other cores while the rest goes on

    def deflate_stripped(path: Path, data: bytes) -> None:
        early[path] = pool.submit(compress_bytes, data, spec.level, bool(path.stat().st_mode & 0o111))

    if spec.strip and spec.strip_symbols:
        # Before the ELF facts are read: the audit judges the files as they ship.
        strip_tree_symbols(root, pruned, keep=spec.keep_patterns, done=deflate_stripped)
    mentions = library_mentions(root)  # before "only" removes the sources
    if spec.compiler is not None:
        compile_tree(spec.compiler, root, spec.bytecode, spec.python)
    elf, _ = elf_objects(root)
    entries = tree_entries(root)
    later = {e.source: pool.submit(compress, e.source, spec.level) for e in entries if e.source not in early}
    files = {e.name: (early.get(e.source) or later[e.source]).result() for e in entries}
    described = contents(tree, pruned, sizes)[staged.name]
    return Pack(key, staged.name, staged.version, files, pruned, sum(c.size for c in files.values()), False,
                record, tuple(elf), described, mentions, wheel)


def pack_from_wheel(spec: PackSpec, dist: Distribution, key: str, wheel: Path, how: str,
                    pool: ThreadPoolExecutor, work: Path) -> Pack:
    """Check and unpack one wheel alone with pypa/installer, then make its pack."""
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pack-", dir=work) as scratch:
        root = Path(scratch) / "site-packages"
        root.mkdir()
        unpacked = Wheel(dist, wheel, how)
        record = check_wheel(unpacked, contents=False)  # unpack checks each member as it reads it
        staged = unpack(unpacked, root, spec.target, Path(scratch) / "discard")
        return pack_from_tree(spec, key, root, staged, record, wheel.name, pool)
