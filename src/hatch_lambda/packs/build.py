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
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from hatch_lambda.cache.entry import Entry
from hatch_lambda.context import BuildContext
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.credentials import Credentials
from hatch_lambda.fetch.files import fetch_one, progress_for
from hatch_lambda.packs.bytecode import remove_compilers_under
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
    missing = [s for s in sources if not (Entry(store_dir, "packs", s.key, INDEX).path / INDEX).is_file()]
    installed: dict[str, Installed] = {}
    if image is not None and missing:
        wheels = [(s, s.wheel or fetch_one(s.dist, cache, lock_dir, credentials=credentials)) for s in missing]
        installed = image(wheels)
    # Larger wheels first, so the two longest jobs do not end up last.
    order = sorted(sources, key=lambda s: -((s.dist.file.size or 0) if s.dist.file else 0))
    progress = progress_for([s.dist for s in missing if s.wheel is None and s.dist.name not in installed], cache)
    pools: list[ProcessPoolExecutor] = []  # the worker processes, once forked

    def one(source: PackSource) -> Pack:
        entry = Entry(store_dir, "packs", source.key, INDEX)
        built: list[bool] = []

        def make(temporary: Path) -> None:
            made = installed.get(source.dist.name) or source.wheel or fetch_one(
                source.dist, cache, lock_dir, progress=progress, credentials=credentials)
            job = (spec, source, temporary, work, made)
            failure = pools[0].submit(build_into, *job).result() if pools else build_into(*job)
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

    jobs = ThreadPoolExecutor(max_workers=workers)  # its threads start with the first job, after the fork
    futures: dict[str, Future[Pack]] = {}
    try:
        if workers > 1 and len(missing) > 1 and sys.platform.startswith("linux"):
            fork_workers(pools, min(workers, len(missing)))
        with progress:
            futures = {s.key: jobs.submit(one, s) for s in order}
            return [futures[s.key].result() for s in sources]
    except BaseException:
        # Ctrl-C or a refusal: nothing more starts, and the workers end now (they ignore SIGINT);
        # every thread is done before the caller removes the scratch directory they write in.
        for future in futures.values():
            future.cancel()
        for pool in pools:
            stop_workers(pool)
        if pools and spec.compiler is not None and spec.compiler.image:
            remove_compilers_under(ctx.work)  # what the killed workers were compiling in the image
        raise
    finally:
        jobs.shutdown(wait=True, cancel_futures=True)
        for pool in pools:
            pool.shutdown(cancel_futures=True)


def fork_workers(pools: list[ProcessPoolExecutor], count: int) -> None:
    """Fork ``count`` pack workers, all at once now, into ``pools`` (as soon as it exists, so that an
    interrupt halfway still finds it to stop).

    Forked, so the caller's main module is not imported again as spawn would do. SIGINT is blocked
    while they are forked and ignored in them: a terminal's Ctrl-C reaches the whole process group,
    and only the build decides what it means.
    """
    # Python's handler is held too: a SIGINT delivered to another thread would raise KeyboardInterrupt in
    # the at-fork hooks (logging's releases its lock there, and a lock left held deadlocks every thread).
    came: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda number, frame: came.append(number)) if main else None
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        pool = ProcessPoolExecutor(max_workers=count, mp_context=multiprocessing.get_context("fork"),
                                   initializer=partial(start_worker, os.getpid(), blocked))
        pools.append(pool)
        pool.submit(int).result()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if main:
            signal.signal(signal.SIGINT, previous)
    if came:
        raise KeyboardInterrupt


def stop_workers(processes: ProcessPoolExecutor) -> None:
    """End the pool's worker processes now, whatever they are doing (``terminate_workers`` from Python 3.14)."""
    terminate = getattr(processes, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    workers = list(getattr(processes, "_processes", {}).values())
    for worker in workers:
        worker.kill()
    for worker in workers:
        worker.join(timeout=10)


def start_worker(parent: int, mask: Iterable[int]) -> None:
    """A forked pack worker: it ignores SIGINT (the build decides), and ends when its build ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set(mask) - {signal.SIGINT})
    die_with_parent(parent)


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
