"""Every distribution's pack for one build: read from the store, or built there, in worker processes.

Two or more packs to build are built in forked worker processes (one per
core), since unpacking a wheel is mostly Python code that holds the GIL; each
worker deflates on threads as well. With ``installer = "docker"`` the missing
packs' wheels are installed in the Lambda image first, all at once
(:mod:`hatch_lambda.packs.image`).
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hatch_lambda.cache.entry import Entry
from hatch_lambda.context import BuildContext
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.credentials import Credentials
from hatch_lambda.fetch.files import fetch_one, progress_for
from hatch_lambda.packs.pack import INDEX, Pack, PackSpec, load, pack_from_tree, pack_from_wheel, write
from hatch_lambda.packs.sources import PackSource
from hatch_lambda.packs.unpack import StagedDistribution


@dataclass(frozen=True)
class Installed:
    """A distribution pip installed in the image, alone in ``root`` (see :mod:`hatch_lambda.packs.image`)."""

    root: Path
    staged: StagedDistribution
    record: dict[str, str]


#: name -> what the image installed, for the packs a docker build lacks (None: install on this machine).
ImageInstall = Callable[[list[tuple[PackSource, Path]]], dict[str, Installed]]


def packs_for(
    spec: PackSpec,
    sources: list[PackSource],
    ctx: BuildContext,
    lock_dir: Path,
    *,
    image: ImageInstall | None = None,
    credentials: Credentials | None = None,
) -> list[Pack]:
    """Every source's pack, in the sources' order: read from the build's store, or built and stored there.

    Downloads go to the cache. With ``image``, the missing packs' wheels are
    installed in the Lambda image first.
    """
    store_dir, cache, work, log = ctx.store, ctx.cache, ctx.work / "packs", ctx.log
    workers = os.cpu_count() or 1
    missing = [s for s in sources if not (Entry(store_dir, "packs", s.key).path / INDEX).is_file()]
    installed: dict[str, Installed] = {}
    if image is not None and missing:
        wheels = [(s, s.wheel or fetch_one(s.dist, cache, lock_dir, credentials=credentials)) for s in missing]
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
                        source.dist, cache, lock_dir, progress=progress, credentials=credentials)
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
