"""One distribution, unpacked, checked, stripped, ELF-read and deflated once: a pack.

A pack holds the deflated bytes of every file one distribution leaves after
stripping, with their names (relative to site-packages), CRCs and sizes, and
the facts the whole-set checks need (its RECORD for path clashes, its ELF
objects for the audit and the duplicate libraries, the library names its
Python files mention). Every distribution becomes one: a wheel is unpacked with
pypa/installer, or, with ``installer = "docker"``, installed by pip inside the
Lambda image into a directory of its own. Zips are only ever assembled from
packs (:mod:`.assemble`), by copying deflated bytes.

Its key is everything that determines those bytes: the wheel's sha256 and file
name, how it was installed (this machine, or which image), the target, the
strip rules, the compression level, and hatch-lambda's version and code. A pack
is a cache entry (:mod:`hatch_lambda.cache.entry`): reading one checks the
sha256 of its data and its key, and one that fails is discarded and built again.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import multiprocessing
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from hatch_lambda.assemble.archive import Compressed, compress, tree_entries
from hatch_lambda.assemble.audit import elf_objects
from hatch_lambda.cache.entry import Entry
from hatch_lambda.cache.store import (
    key_of,
)
from hatch_lambda.config.options import LambdaConfig
from hatch_lambda.context import BuildContext
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.builds import Wheel
from hatch_lambda.fetch.files import fetch_one, progress_for
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.packs.contents import DistributionContents, contents, staged_sizes
from hatch_lambda.packs.elf import ElfInfo
from hatch_lambda.packs.strip import PruneReport, prune
from hatch_lambda.packs.unpack import (
    StagedDistribution,
    StagedTree,
    check_wheel,
    unpack,
)
from hatch_lambda.runtime.target import Target

if TYPE_CHECKING:
    from hatch_lambda.packs.sources import PackSource

INDEX = "index.json"
DATA = "data"
Log = Callable[[str], None]
#: A shared library's name as Python code may spell it to load it by file name (ctypes).
LIBRARY_NAME = re.compile(rb"[\w.+-]*\.so[\w.+-]*")


@dataclass(frozen=True)
class PackSpec:
    """What decides a pack's bytes besides its wheel: the target, the strip rules, the deflate level."""

    python: str
    arch: str
    strip: bool
    strip_patterns: tuple[str, ...]
    keep_patterns: tuple[str, ...]
    level: int

    @classmethod
    def of(cls, config: LambdaConfig) -> PackSpec:
        return cls(config.target.python, config.target.arch, config.strip, config.strip_patterns,
                   config.keep_patterns, config.compression_level)

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
        "strip-patterns": list(spec.strip_patterns),
        "keep-patterns": list(spec.keep_patterns),
        "level": spec.level,
    })


def load(directory: Path, key: str) -> Pack | None:
    """The pack stored in ``directory``, or None if it is missing or fails its check."""
    try:
        index = json.loads((directory / INDEX).read_text())
        data = (directory / DATA).read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("key") != key or hashlib.sha256(data).hexdigest() != index.get("sha256"):
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
                found.update(m.decode("utf-8", "replace") for m in LIBRARY_NAME.findall(Path(directory, name).read_bytes()))
    return tuple(sorted(found))


def pack_from_tree(spec: PackSpec, key: str, root: Path, staged: StagedDistribution, record: dict[str, str],
                   wheel: str, pool: ThreadPoolExecutor) -> Pack:
    """The pack of one distribution installed alone under ``root``: stripped, ELF-read, deflated."""
    tree = StagedTree(root=root, target=spec.target, distributions=(staged,))
    sizes = staged_sizes(tree)
    # Duplicate libraries are judged at assembly, across every distribution of the artifact.
    pruned = prune(root, strip=spec.strip, drop=spec.strip_patterns, keep=spec.keep_patterns)
    elf, _ = elf_objects(root)
    entries = tree_entries(root)
    deflated = list(pool.map(partial(compress, level=spec.level), [e.source for e in entries]))
    files = {e.name: c for e, c in zip(entries, deflated)}
    described = contents(tree, pruned, sizes)[staged.name]
    return Pack(key, staged.name, staged.version, files, pruned, sum(c.size for c in files.values()), False,
                record, tuple(elf), described, library_mentions(root), wheel)


def pack_from_wheel(spec: PackSpec, dist: Distribution, key: str, wheel: Path, how: str,
                    pool: ThreadPoolExecutor, work: Path) -> Pack:
    """Check and unpack one wheel alone with pypa/installer, then make its pack."""
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pack-", dir=work) as scratch:
        root = Path(scratch) / "site-packages"
        root.mkdir()
        unpacked = Wheel(dist, wheel, how)
        record = check_wheel(unpacked)
        staged = unpack(unpacked, root, spec.target, Path(scratch) / "discard")
        return pack_from_tree(spec, key, root, staged, record, wheel.name, pool)


@dataclass(frozen=True)
class Installed:
    """A distribution pip installed in the image, alone in ``root`` (see :mod:`.docker_install`)."""

    root: Path
    staged: StagedDistribution
    record: dict[str, str]


#: name -> what the image installed, for the packs a docker build lacks (None: install on this machine).
ImageInstall = Callable[[list[tuple["PackSource", Path]]], dict[str, Installed]]


def packs_for(
    spec: PackSpec,
    sources: list[PackSource],
    ctx: BuildContext,
    lock_dir: Path,
    *,
    image: ImageInstall | None = None,
) -> list[Pack]:
    """Every source's pack, in the sources' order: read from the build's store, or built and stored there.

    Downloads go to the cache. Two or more packs to build are built in worker
    processes (one per core), since unpacking a wheel is mostly Python code that
    holds the GIL; each worker deflates on threads as well. With ``image``, the
    missing packs' wheels are installed in the Lambda image first, all at once.
    """
    store_dir, cache, work, log = ctx.store, ctx.cache, ctx.work / "packs", ctx.log
    workers = os.cpu_count() or 1
    missing = [s for s in sources if not (Entry(store_dir, "packs", s.key).path / INDEX).is_file()]
    installed: dict[str, Installed] = {}
    if image is not None and missing:
        wheels = [(s, s.wheel or fetch_one(s.dist, cache, lock_dir)) for s in missing]
        installed = image(wheels)
    processes = None
    if workers > 1 and len(missing) > 1 and sys.platform.startswith("linux"):
        # Forked (no re-import of the caller's main module, as spawn would do), and all at once
        # now, before any thread of this build starts.
        context = multiprocessing.get_context("fork")
        processes = ProcessPoolExecutor(max_workers=min(workers, len(missing)), mp_context=context,
                                        initializer=die_with_parent, initargs=(os.getpid(),))
        processes.submit(int).result()
    # Larger wheels first, so the two longest jobs do not end up last.
    order = sorted(sources, key=lambda s: -((s.dist.file.size or 0) if s.dist.file else 0))
    progress = progress_for([s.dist for s in missing if s.wheel is None and s.dist.name not in installed], cache)
    try:
        with progress, ThreadPoolExecutor(max_workers=workers) as jobs:

            def one(source: PackSource) -> Pack:
                entry = Entry(store_dir, "packs", source.key)
                built = []

                def make(temporary: Path) -> None:
                    made = installed.get(source.dist.name) or source.wheel or fetch_one(
                        source.dist, cache, lock_dir, progress=progress)
                    job = (spec, source, temporary, work, made)
                    failure = build_into(*job) if processes is None else processes.submit(build_into, *job).result()
                    if failure is not None:
                        raise LambdaBuildError(*failure)
                    built.append(True)

                def damaged() -> None:
                    log(f"  cached pack of {source.dist.pin} failed its check; building it again")

                try:
                    pack = entry.get(lambda path: load(path, source.key), make, damaged)
                except OSError as exc:
                    raise LambdaBuildError(f"{source.dist.pin}: the pack just stored cannot be read back ({exc})",
                                           "check the disk holding the cache (HATCH_LAMBDA_CACHE_DIR)") from None
                return dataclasses.replace(pack, reused=False) if built else pack

            futures = {s.key: jobs.submit(one, s) for s in order}
            return [futures[s.key].result() for s in sources]
    finally:
        if processes is not None:
            processes.shutdown(cancel_futures=True)


def die_with_parent(parent: int) -> None:
    """Make a forked worker end when its build ends, however it ends (Linux's PR_SET_PDEATHSIG).

    A worker left running after its build was killed would hold the build's
    stdout and stderr open, so whoever waits for the build's output would wait
    for ever, and it would keep the cache entry it is filling locked.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the build died before the line above took effect
        os._exit(1)


def build_into(
    spec: PackSpec, source: PackSource, directory: Path, work: Path, made: Path | Installed
) -> tuple[str, str | None] | None:
    """Build one pack (from a wheel, or from what the image installed) into ``directory``; (problem, fix) of
    a refusal instead of raising it (it may cross processes)."""
    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as deflaters:
            if isinstance(made, Installed):
                pack = pack_from_tree(spec, source.key, made.root, made.staged, made.record, source.filename,
                                      deflaters)
            else:
                pack = pack_from_wheel(spec, source.dist, source.key, made, source.how, deflaters, work)
            write(directory, pack)
    except LambdaBuildError as exc:
        return exc.problem, exc.fix
    return None
