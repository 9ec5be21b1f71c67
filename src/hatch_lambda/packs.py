"""One distribution, staged, stripped, checked and deflated once: a pack in the cache.

A pack holds the deflated bytes of every file one wheel leaves after stripping,
with their names (relative to site-packages), CRCs and sizes. Its key is
everything that determines those bytes: the wheel's sha256, the target, the
strip rules, the compression level, and hatch-lambda's version and code. A layer or fat
zip is then assembled from packs by copying deflated bytes, so when one
package changes only that package is unpacked and deflated again, and the zip
is byte-identical to one built from scratch.

A pack is written to a temporary directory and renamed into place under its
lock; reading one checks the sha256 of its data, and a pack that fails is
discarded and built again.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from functools import partial

from .archive import Compressed, compress, tree_entries
from .audit import AuditReport, ElfInfo, audit_objects, elf_objects
from .cache import atomic_dir, discard, entry_dir, key_of, locked, publish, touch
from .config import LambdaConfig
from .contents import contents, staged_sizes
from .errors import LambdaBuildError
from .fetch import fetch_one, progress_for
from .install import StagedTree, Wheel, check_wheel, unpack
from .lock import Distribution, Resolution
from .prune import PruneReport, prune
from .target import Target
from .wheel_checks import check_no_overlap

INDEX = "index.json"
DATA = "data"
Log = Callable[[str], None]


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
    contents: dict  # the manifest's entry for this distribution (see :mod:`.contents`)


def eligible(config: LambdaConfig, resolution: Resolution) -> bool:
    """Packs are used when every distribution is a wheel downloaded by digest (no builds, no Docker)."""
    if config.installer == "docker":
        return False
    return all(
        d.file is not None and d.file.kind == "wheel" and d.file.url is not None and d.file.sha256
        for d in resolution.distributions
    )


def pack_key(config: LambdaConfig, dist: Distribution) -> str:
    target = config.target
    return key_of({
        "kind": "pack",
        "wheel": dist.file.sha256,
        "filename": dist.file.filename,
        "python": target.python,
        "arch": target.arch,
        "strip": config.strip,
        "strip-patterns": list(config.strip_patterns),
        "keep-patterns": list(config.keep_patterns),
        "level": config.compression_level,
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
                    dict(index["record"]), elf, index["contents"])
    except (KeyError, TypeError, ValueError):
        return None


def store(directory: Path, pack: Pack) -> None:
    """Write ``pack`` into ``directory`` atomically (temporary directory, then rename)."""
    temporary = atomic_dir(directory)
    try:
        rows, offset, digest = [], 0, hashlib.sha256()
        with (temporary / DATA).open("wb") as out:
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
            "sha256": digest.hexdigest(),
            "installed_bytes": pack.installed_bytes,
            "pruned": {"files": pack.pruned.files, "bytes": pack.pruned.bytes, "by_rule": pack.pruned.by_rule,
                       "removed": pack.pruned.removed},
            "files": rows,
            "record": pack.record,
            "elf": [[path, info.as_dict()] for path, info in pack.elf],
            "contents": pack.contents,
        }
        (temporary / INDEX).write_text(json.dumps(index, separators=(",", ":")))
        publish(temporary, directory)
    except BaseException:
        discard(temporary)
        raise


def build_pack(
    config: LambdaConfig, dist: Distribution, key: str, wheel: Path, pool: ThreadPoolExecutor, work: Path
) -> Pack:
    """Check and unpack one wheel alone, strip it, read its ELF objects and deflate every file."""
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pack-", dir=work) as scratch:
        root = Path(scratch) / "site-packages"
        root.mkdir()
        unpacked = Wheel(dist, wheel, "wheel")
        record = check_wheel(unpacked)
        staged = unpack(unpacked, root, config.target, Path(scratch) / "discard")
        tree = StagedTree(root=root, target=config.target, distributions=(staged,))
        sizes = staged_sizes(tree)
        pruned = prune(root, strip=config.strip, drop=config.strip_patterns, keep=config.keep_patterns)
        elf, _ = elf_objects(root)
        entries = tree_entries(root)
        deflated = list(pool.map(partial(compress, level=config.compression_level), [e.source for e in entries]))
        files = {e.name: c for e, c in zip(entries, deflated)}
        described = contents(tree, pruned, sizes)[dist.name]
    return Pack(key, dist.name, dist.version, files, pruned, sum(c.size for c in files.values()), False,
                record, tuple(elf), described)


def packs_for(
    config: LambdaConfig, resolution: Resolution, cache: Path, work: Path, *, log: Log = lambda message: None
) -> list[Pack]:
    """Every distribution's pack, in name order: read from the cache, or built and stored there.

    Two or more packs to build are built in worker processes (one per core),
    since unpacking a wheel is mostly Python code that holds the GIL; each
    worker deflates on threads as well.
    """
    workers = os.cpu_count() or 1
    lock_dir = resolution.lock_path.parent
    dists = sorted(resolution.distributions, key=lambda d: d.name)
    keys = {d.name: pack_key(config, d) for d in dists}
    missing = [d for d in dists if not (entry_dir(cache, "packs", keys[d.name]) / INDEX).is_file()]
    processes = None
    if workers > 1 and len(missing) > 1 and sys.platform.startswith("linux"):
        # Forked (no re-import of the caller's main module, as spawn would do), and all at once
        # now, before any thread of this build starts.
        context = multiprocessing.get_context("fork")
        processes = ProcessPoolExecutor(max_workers=min(workers, len(missing)), mp_context=context,
                                        initializer=die_with_parent, initargs=(os.getpid(),))
        processes.submit(int).result()
    # Larger wheels first, so the two longest jobs do not end up last.
    order = sorted(dists, key=lambda d: -(d.file.size or 0))
    progress = progress_for(missing, cache)
    try:
        with progress, ThreadPoolExecutor(max_workers=workers) as jobs:

            def one(dist: Distribution) -> Pack:
                key = keys[dist.name]
                directory = entry_dir(cache, "packs", key)
                pack = load(directory, key)
                if pack is not None:
                    touch(directory)
                    return pack
                with locked(directory):
                    pack = load(directory, key)  # another build may have stored it meanwhile
                    if pack is not None:
                        return pack
                    if directory.exists():
                        log(f"  cached pack of {dist.pin} failed its check; building it again")
                        discard(directory)
                    wheel = fetch_one(dist, cache, lock_dir, progress=progress)
                    if processes is None:
                        failure = build_and_store(config, dist, key, wheel, directory, work)
                    else:
                        failure = processes.submit(build_and_store, config, dist, key, wheel, directory,
                                                   work).result()
                    if failure is not None:
                        raise LambdaBuildError(*failure)
                    pack = load(directory, key)
                    if pack is None:
                        raise LambdaBuildError(f"{dist.pin}: the pack just stored in {directory} cannot be read back",
                                               "check the disk holding the cache (HATCH_LAMBDA_CACHE_DIR)")
                    return dataclasses.replace(pack, reused=False)

            futures = {d.name: jobs.submit(one, d) for d in order}
            return [futures[d.name].result() for d in dists]
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


def build_and_store(
    config: LambdaConfig, dist: Distribution, key: str, wheel: Path, directory: Path, work: Path
) -> tuple[str, str | None] | None:
    """Build one pack and store it; (problem, fix) of a refusal instead of raising it (it may cross processes)."""
    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as deflaters:
            store(directory, build_pack(config, dist, key, wheel, deflaters, work))
    except LambdaBuildError as exc:
        return exc.problem, exc.fix
    return None


def merge(packs: list[Pack], prefix: str = "") -> dict[str, Compressed]:
    """name in the zip -> contents; a later distribution's file wins, as when unpacking in name order."""
    out: dict[str, Compressed] = {}
    for pack in packs:
        for name, content in pack.files.items():
            out[prefix + name] = content
    return out


def check_overlap(packs: list[Pack], dists: list[Distribution]) -> None:
    """The full build's check: two distributions may not install one path with different contents."""
    check_no_overlap((dist, Path(dist.file.filename), pack.record) for dist, pack in zip(dists, packs))


def audit_packs(packs: list[Pack], target: Target) -> AuditReport:
    """The audit of the zip the packs make, from the ELF facts each pack recorded."""
    names = {name.rsplit("/", 1)[-1] for pack in packs for name in pack.files}
    return audit_objects(((path, pack.name, info) for pack in packs for path, info in pack.elf), target, names)


def pruned_total(packs: list[Pack]) -> PruneReport:
    return PruneReport.total(pack.pruned for pack in packs)
