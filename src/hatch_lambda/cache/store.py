"""The shared cache directory: where it is, how it is written, how it is bounded.

Every entry is written to a temporary name in its final directory and renamed
into place, so a reader sees a whole entry or none; writers of one entry take
its lock (``filelock``), so two builds sharing the cache do the work once.
Readers verify what they read (each kind of entry stores its own digest) and
discard an entry that fails, so a damaged cache heals itself on the next
build. ``hatch-lambda cache prune`` bounds its size, oldest use first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

import hatch_lambda
from hatch_lambda.errors import LambdaBuildError

# Bumped whenever the layout or meaning of a cached entry changes.
FORMAT = 2
# Kinds of entries that may be pruned: downloads, wheels built from sdists and git checkouts, packs, layers,
# and metadata read through build backends. Every kind is sharded by its key's first two digits.
KINDS = ("files", "built", "git", "packs", "layers", "metadata")
#: An entry's key: hex digits (a sha256, a key_of), with a hex suffix for a built sdist's subdirectory.
KEY = re.compile(r"^[0-9a-f]{64}(-[0-9a-f]{16})?$")


#: The variable that names the cache directory.
CACHE_ENV = "HATCH_LAMBDA_CACHE_DIR"
_SET_IT = f"set {CACHE_ENV} to a directory you can write"


def cache_dir() -> Path:
    """``$HATCH_LAMBDA_CACHE_DIR``, else the platform's user cache directory + ``hatch-lambda``.

    Linux and others: ``$XDG_CACHE_HOME`` or ``~/.cache``; macOS ``~/Library/Caches``;
    Windows ``%LOCALAPPDATA%``. Without a home directory (``HOME`` unset and none in the
    password database, or one that does not exist) and none of these set, an error says
    to set ``HATCH_LAMBDA_CACHE_DIR``.
    """
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    if sys.platform == "darwin":
        base = _home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or _home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or _home() / ".cache")
    return base / "hatch-lambda"


def _home() -> Path:
    """The user's home directory, which must exist: the default cache lives below it."""
    try:
        home = Path.home()
    except (RuntimeError, KeyError, OSError):
        raise LambdaBuildError(
            "no cache directory: HOME is not set and the password database has no home directory for this user",
            f"{_SET_IT}, or set HOME or XDG_CACHE_HOME",
        ) from None
    if not home.is_dir():
        raise LambdaBuildError(
            f"no cache directory: the home directory {home} (from HOME) does not exist",
            f"{_SET_IT}, or set HOME or XDG_CACHE_HOME to a directory that exists",
        )
    return home


def writable_cache_dir() -> Path:
    """:func:`cache_dir`, created if need be and proven writable, before a build relies on it."""
    cache = cache_dir()
    where = f"{cache} (from {CACHE_ENV})" if os.environ.get(CACHE_ENV) else str(cache)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe, name = tempfile.mkstemp(prefix=".probe-", dir=cache)
        os.close(probe)
        os.unlink(name)
    except OSError as exc:
        if cache.exists() and not cache.is_dir():
            what = f"is a {'file' if cache.is_file() else 'device'}, not a directory"
        else:
            what = f"cannot be written ({exc.strerror or type(exc).__name__})"
        raise LambdaBuildError(f"the cache directory {where} {what}", _SET_IT) from None
    return cache


def code_digest() -> str:
    """sha256 of every module of hatch-lambda (all its subpackages): a changed rule or writer
    invalidates what they made, even between two builds of one version."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for module in sorted(package.rglob("*.py")):
        digest.update(module.relative_to(package).as_posix().encode() + b"\0" + module.read_bytes() + b"\0")
    return digest.hexdigest()


def key_of(parts: dict) -> str:
    """A hex sha256 naming everything in ``parts`` (JSON, sorted keys), the cache format,
    hatch-lambda's version and its code."""
    text = json.dumps(
        {"format": FORMAT, "hatch-lambda": hatch_lambda.__version__, "code": code_digest(), **parts},
        sort_keys=True, separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


def entry_dir(cache: Path, kind: str, key: str) -> Path:
    """``<cache>/<kind>/<key[:2]>/<key>``; a key that is not hex (it may come from uv.lock) is an error."""
    if kind not in KINDS or not KEY.match(key):
        raise LambdaBuildError(
            f"cache entry {kind}/{key!r} is not a hex digest, so it has no place in the cache {cache}",
            "the digest comes from uv.lock, which was not written by uv: run `uv lock` again and review the change",
        )
    return cache / kind / key[:2] / key


def inside(directory: Path, path: Path) -> bool:
    """Whether ``path`` is below ``directory``, links followed in both."""
    resolved, root = path.resolve(), directory.resolve()
    return resolved.is_relative_to(root) and resolved != root


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s lock (a sibling ``.lock`` file) while filling it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(directory) + ".lock"):
        yield


def atomic_dir(final: Path) -> Path:
    """A fresh temporary directory beside ``final``, to fill and then :func:`publish`."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))


def publish(temporary: Path, final: Path) -> None:
    """Rename a filled temporary directory into place, replacing a stale entry."""
    if final.exists():
        discard(final)
    os.replace(temporary, final)


def discard(path: Path) -> None:
    """Remove an entry (moved aside first, so no reader sees it half-deleted)."""
    if not path.exists():
        return
    aside = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.gone")
    try:
        os.replace(path, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def touch(path: Path) -> None:
    """Mark an entry as used now (prune removes the least recently used first)."""
    with contextlib.suppress(OSError):
        os.utime(path)


@dataclass(frozen=True)
class CacheEntry:
    path: Path
    kind: str
    size: int  # bytes of every file inside
    used: float  # mtime of the entry directory: last write or use


def entries(cache: Path) -> list[CacheEntry]:
    """Every entry of every kind, least recently used first."""
    out = []
    for kind in KINDS:
        base = cache / kind
        if not base.is_dir():
            continue
        shards = sorted(p for p in base.iterdir() if p.is_dir())
        for shard in shards:
            for entry in sorted(shard.iterdir()):
                if not entry.is_dir() or entry.name.startswith("."):
                    continue
                size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                out.append(CacheEntry(entry, kind, size, entry.stat().st_mtime))
    out.sort(key=lambda e: (e.used, str(e.path)))
    return out


@dataclass(frozen=True)
class PruneResult:
    removed: int
    freed: int
    kept: int
    size: int  # bytes left


def prune_cache(cache: Path, *, max_bytes: int, older_than_days: float | None = None) -> PruneResult:
    """Remove entries, least recently used first, until the cache holds at most ``max_bytes``.

    With ``older_than_days``, entries unused for longer go regardless of size.
    Each entry is removed under its lock, so a build filling it is never cut short.
    """
    found = entries(cache)
    total = sum(e.size for e in found)
    limit = time.time() - older_than_days * 86400 if older_than_days is not None else None
    removed = freed = 0
    for entry in found:
        if total <= max_bytes and (limit is None or entry.used >= limit):
            continue
        with locked(entry.path):
            discard(entry.path)
        total -= entry.size
        freed += entry.size
        removed += 1
    for kind in KINDS:  # leftovers of interrupted writes
        base = cache / kind
        if base.is_dir():
            for stale in base.glob("*/.*.tmp"):
                if stale.stat().st_mtime < time.time() - 86400:
                    shutil.rmtree(stale, ignore_errors=True)
    return PruneResult(removed, freed, len(found) - removed, total)
