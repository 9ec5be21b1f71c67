"""Downloading the lock's files into a cache, checked against the lock's sha256.

Several downloads run at once. A file whose digest disagrees with the lock is
an error and is never cached. The usual proxy variables apply (urllib reads
them); credentials for private indexes are found as uv finds them
(:mod:`.credentials`). A full disk is said to be one, naming the directory.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hatch_lambda.cache.store import entry_dir, inside
from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.fetch.credentials import Credentials
from hatch_lambda.fetch.download import DownloadFailed, RetryPolicy, WriteFailed, download
from hatch_lambda.fetch.progress import Progress
from hatch_lambda.hashing import file_sha256
from hatch_lambda.lockfile.resolve import Distribution
from hatch_lambda.lockfile.wheels import LockedFile

CHUNK = 1 << 20
STALE_PART_SECONDS = 3600


def fetch_one(
    dist: Distribution,
    cache: Path,
    lock_dir: Path,
    *,
    policy: RetryPolicy | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    credentials: Credentials | None = None,
) -> Path:
    """The local path of ``dist``'s chosen file, downloaded and verified if needed.

    ``credentials``: the build's (else found now for the project in ``lock_dir``).
    """
    file = dist.file
    assert file is not None
    if file.url is None:
        # A path source: the file is in the project tree, relative to the lock.
        local = (lock_dir / (file.path or dist.source)).resolve()
        if not local.is_file():
            raise LambdaBuildError(f"{dist.pin}: {local} does not exist (named in uv.lock)", "run `uv lock`")
        _verify(local, dist)
        return local
    sha256 = dist.sha256
    final = cached_path(file, cache)
    if final.is_file():
        if file_sha256(final) == sha256:
            return final
        final.unlink(missing_ok=True)  # damaged in the cache: fetch it again
    policy = policy or RetryPolicy.from_env()
    credentials = credentials or Credentials.of_project(lock_dir)
    try:
        actual, part = _download(dist, final, policy, stop, progress, credentials)
    except (OSError, WriteFailed) as exc:
        error = exc.error if isinstance(exc, WriteFailed) else exc
        raise _write_error(dist, final.parent, error) from None
    if actual != sha256:
        os.unlink(part)
        raise LambdaBuildError(
            f"{dist.pin}: {file.filename} has sha256 {actual}, but uv.lock says {sha256}",
            "the file changed on the index or the lock was edited; run `uv lock --refresh-package "
            f"{dist.name}` and review the change",
        )
    os.replace(part, final)
    if progress is not None:
        progress.finished_one()
    return final


def _download(dist: Distribution, final: Path, policy: RetryPolicy, stop: threading.Event | None,
              progress: Progress | None, credentials: Credentials) -> tuple[str, str]:
    """Download ``dist``'s file into a ``.part`` file beside ``final``: its sha256 and the part's path."""
    file = dist.file
    assert file is not None and file.url is not None
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(final.parent)
    registry = dist.source if dist.source_kind == "registry" else None
    part = ""
    try:
        with tempfile.NamedTemporaryFile(dir=final.parent, delete=False, suffix=".part") as out:
            part = out.name
            actual = download(file.url, out, headers={"User-Agent": "hatch-lambda"}, policy=policy, stop=stop,
                              progress=progress.add if progress else None,
                              credentials=credentials.for_file(registry), size=file.size)
    except DownloadFailed as exc:
        _discard(part)
        raise LambdaBuildError(
            f"{dist.pin}: downloading {file.url} failed: {exc}",
            exc.fix or "check the URL, the network, the proxy variables (HTTPS_PROXY) and the credentials for "
            "private indexes (see docs/caching.md)",
        ) from None
    except BaseException:
        _discard(part)
        raise
    return actual, part


def _discard(part: str) -> None:
    if part:
        Path(part).unlink(missing_ok=True)


def _write_error(dist: Distribution, directory: Path, error: OSError) -> LambdaBuildError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return LambdaBuildError(f"{dist.pin}: no space left on device writing {directory}",
                                "free some space there, or set HATCH_LAMBDA_CACHE_DIR to a disk with room "
                                "(`hatch-lambda cache prune` makes room in the cache)")
    return LambdaBuildError(f"{dist.pin}: writing {directory} failed: {error.strerror or error}",
                            "check the disk holding the cache (HATCH_LAMBDA_CACHE_DIR)")


def cached_path(file: LockedFile, cache: Path) -> Path:
    """Where a file of the lock is kept in the cache, by its sha256: always inside ``cache/files``.

    The lock's strings were checked when it was read (:mod:`hatch_lambda.lockfile.trust`); this is the
    last word: a path that would land anywhere else (a ``..``, an absolute name, a link in the cache)
    is an error, never a file written or removed there.
    """
    assert file.sha256, "a file is cached only once its digest is known"
    directory = entry_dir(cache, "files", file.sha256)
    final = directory / file.filename
    expected = (cache / "files").resolve() / file.sha256[:2] / file.sha256 / file.filename
    if final.resolve() != expected or not inside(cache, final):
        raise LambdaBuildError(
            f"uv.lock: the file {file.filename!r} (sha256 {file.sha256}) would be cached at {final.resolve()}, "
            f"outside its place in the cache {directory}",
            f"this lock was not written by uv: run `uv lock` again and review the change; if a link in the "
            f"cache points elsewhere, remove {directory}",
        )
    return final


def progress_for(dists: Iterable[Distribution], cache: Path) -> Progress:
    """Progress of downloading what of ``dists`` the cache does not hold yet."""
    missing = [d.file for d in dists
               if d.file is not None and d.file.url and d.file.sha256 and not cached_path(d.file, cache).is_file()]
    return Progress(len(missing), sum(f.size or 0 for f in missing))


def _remove_stale_parts(directory: Path) -> None:
    """Delete ``*.part`` files a killed build left behind (a live download keeps its file fresh)."""
    now = time.time()
    for part in directory.glob("*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
        except OSError:
            pass


def _verify(path: Path, dist: Distribution) -> None:
    expected = dist.file.sha256 if dist.file else None
    if not expected:
        return
    actual = file_sha256(path)
    if actual != expected:
        raise LambdaBuildError(
            f"{dist.pin}: {path} has sha256 {actual}, but uv.lock says {expected}",
            "run `uv lock` after changing a local file",
        )


def fetch_all(
    dists: Iterable[Distribution],
    cache: Path,
    lock_dir: Path,
    *,
    jobs: int = 8,
    on_done: Callable[[Distribution, Path], None] | None = None,
    credentials: Credentials | None = None,
) -> dict[str, Path]:
    """Download every distribution's file, several at once: name -> local path."""
    dists = [d for d in dists if d.file is not None]
    credentials = credentials or Credentials.of_project(lock_dir)
    out: dict[str, Path] = {}
    policy = RetryPolicy.from_env()
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    progress = progress_for(dists, cache).__enter__()
    try:
        futures = {d.name: pool.submit(fetch_one, d, cache, lock_dir, policy=policy, stop=stop, progress=progress,
                                         credentials=credentials)
                   for d in dists}
        errors = []
        for dist in dists:
            try:
                out[dist.name] = futures[dist.name].result()
            except LambdaBuildError as exc:
                errors.append(exc)
                continue
            if on_done:
                on_done(dist, out[dist.name])
    except BaseException:
        # Ctrl-C or a bug: stop the other downloads now (each removes its .part file).
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        progress.__exit__(None, None, None)
    pool.shutdown(wait=True)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise LambdaBuildError("; ".join(e.problem for e in errors), errors[0].fix)
    return out

