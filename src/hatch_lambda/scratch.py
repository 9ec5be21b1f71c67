"""The scratch directory a build writes into, beside its output directory.

Its name carries the owner's pid (``.hatch-lambda-<pid>-<random>``) and the
owner holds an exclusive ``flock`` on ``<scratch>/.owner`` while it builds.
A build killed outright (SIGKILL, a lost CI runner) cannot remove its scratch
directory, so each new build removes the stale ones first: those whose lock
nobody holds, or, before the lock file exists, whose pid is not running. A
concurrent build's scratch directory is never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from hatch_lambda.errors import LambdaBuildError

fcntl: ModuleType | None
try:
    import fcntl as _fcntl

    fcntl = _fcntl
except ImportError:  # not POSIX: fall back to the pid check
    fcntl = None

PREFIX = ".hatch-lambda-"
#: The file a build writes beside its artifacts, and its format (see :mod:`hatch_lambda.assemble.manifest`).
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
OWNER = ".owner"
_POINT_IT = ("point `directory` in the target's table of pyproject.toml (or the -d option) at a directory you "
             "can write")


def _unusable(out_dir: Path, exc: OSError | None = None) -> LambdaBuildError:
    if out_dir.exists() and not out_dir.is_dir():
        reason = f"it is a {'file' if out_dir.is_file() else 'device'}, not a directory"
    else:
        reason = f"it cannot be written ({exc.strerror if exc and exc.strerror else 'not writable'})"
    return LambdaBuildError(f"the output directory {out_dir} cannot hold the artifacts: {reason}", _POINT_IT)


def output_directory(out_dir: Path) -> Path:
    """``out_dir``, created if need be; one error when it is a file, a device or cannot be written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unusable(out_dir, exc) from None
    if not out_dir.is_dir():  # mkdir(exist_ok=True) accepts a link to a file on some systems
        raise _unusable(out_dir)
    # Written to, to know: permission bits, a read-only mount, an unwritable device. Named like a
    # scratch directory of this process, so one an interrupt leaves is removed as stale by the next build.
    probe = out_dir / f"{PREFIX}{os.getpid()}-probe-{os.urandom(4).hex()}"
    try:
        os.mkdir(probe)
    except OSError as exc:
        raise _unusable(out_dir, exc) from None
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(probe)
    return out_dir


@dataclass
class Scratch:
    path: Path
    _lock_fd: int | None
    _output_fd: int | None = None

    @classmethod
    def claim(cls, out_dir: Path) -> Scratch:
        """Remove stale scratch directories in ``out_dir``, then create and lock a new one."""
        remove_stale(out_dir)
        path = out_dir / f"{PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
        fd = None
        try:
            try:
                os.mkdir(path, 0o700)
            except OSError as exc:  # read-only, or the permission checked earlier was taken away
                raise _unusable(out_dir, exc) from None
            # Locked under another name, then renamed: nobody sees the lock file unlocked.
            fd = os.open(path / f"{OWNER}.new", os.O_CREAT | os.O_RDWR, 0o600)
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(path / f"{OWNER}.new", path / OWNER)
        except BaseException:  # Ctrl-C halfway: the directory is not left behind
            cls(path, fd).release()
            raise
        return cls(path, fd)

    def lock_output(self) -> None:
        """Wait for, then hold until :meth:`release`, the output directory's lock.

        Taken before reading ``manifest.json`` and renaming the artifacts into
        place, so two builds into one directory (lambda-layer and lambda-fat
        at once) never lose each other's manifest section.
        """
        if fcntl is None or self._output_fd is not None:
            return
        self._output_fd = os.open(self.path.parent, os.O_RDONLY)
        fcntl.flock(self._output_fd, fcntl.LOCK_EX)

    def release(self) -> None:
        # A process of the build being killed (a pack worker's compiler) may write a moment longer.
        for attempt in range(6):
            shutil.rmtree(self.path, ignore_errors=True)
            if not self.path.exists():
                break
            time.sleep(0.05 * 2**attempt)
        for fd in (self._lock_fd, self._output_fd):
            if fd is not None:
                os.close(fd)
        self._lock_fd = self._output_fd = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name: str) -> int | None:
    head = name[len(PREFIX):].split("-", 1)[0]
    return int(head) if head.isdigit() else None


def is_stale(path: Path) -> bool:
    """True when no running build owns the scratch directory ``path``."""
    try:
        fd = os.open(path / OWNER, os.O_RDWR)
    except FileNotFoundError:
        # Created, but the owner has not locked it yet (or an older layout): trust the pid.
        pid = _owner_pid(path.name)
        return pid is not None and not _pid_alive(pid)
    except OSError:
        return False
    try:
        if fcntl is None:
            pid = _owner_pid(path.name)
            return pid is not None and not _pid_alive(pid)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def remove_stale(out_dir: Path) -> list[Path]:
    """Delete the scratch directories in ``out_dir`` that no running build owns; those removed."""
    removed: list[Path] = []
    try:
        children = list(out_dir.iterdir())
    except OSError:
        return removed
    for child in children:
        if child.name.startswith(PREFIX) and child.is_dir() and not child.is_symlink() and is_stale(child):
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def holds_build_output(directory: Path | str) -> bool:
    """Whether ``directory`` holds a manifest.json a build wrote: this format, and a target's artifacts (or the
    files of one that did not finish) in it. Anything else named manifest.json is not ours. Earlier output
    directories are judged by this one rule wherever they are met: in function code and in local source trees."""
    try:
        data = json.loads(Path(directory, MANIFEST).read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("targets"), dict):
        return False
    listed = any(isinstance(section, dict) and isinstance(section.get("artifacts"), list) and section["artifacts"]
                 for section in data["targets"].values())
    marked = data.get("incomplete")
    unfinished = isinstance(marked, dict) and any(isinstance(files, list) and files for files in marked.values())
    return listed or unfinished
