"""Git sources: the exact commit the lock pins, checked out with ``git`` and built into a wheel.

uv writes a git source as ``<url>?<subdirectory=..>&<rev|tag|branch=..>#<commit>``.
The commit after ``#`` is what was resolved; the ref only says how it was
found. The commit is fetched alone (``git fetch --depth 1 <url> <commit>``),
or, where the server refuses to hand out a commit by name, from a full fetch;
either way the checkout must be that commit. The wheel built from it is cached
under the URL, the commit and the subdirectory, so a second build neither
fetches nor builds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from hatch_lambda.cache.entry import WHEEL_META, Entry, read_wheel, store_wheel
from hatch_lambda.cache.store import inside, key_of
from hatch_lambda.context import Log
from hatch_lambda.errors import LambdaBuildError, redact

COMMIT = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
GIT_TIMEOUT = 600


@dataclass(frozen=True)
class GitSource:
    url: str  # the repository, without query or fragment
    commit: str  # full hex object name
    subdirectory: str | None = None
    ref: str | None = None  # "tag v1.0", "branch main", "rev abc": how the lock found the commit

    @property
    def label(self) -> str:
        where = redact(self.url) + (f" ({self.subdirectory})" if self.subdirectory else "")  # shown in logs
        return f"{where} at {self.commit[:12]}" + (f" ({self.ref})" if self.ref else "")


def parse_git_source(text: str, *, where: str = "uv.lock") -> GitSource:
    """The parts of a lock's ``source = { git = "..." }``."""
    parts = urlsplit(text.removeprefix("git+"))
    commit = parts.fragment
    if not COMMIT.match(commit):
        raise LambdaBuildError(
            f"{where}: git source {text!r} pins no commit (expected '#<40 hex digits>' at the end)",
            "regenerate the lock with `uv lock`",
        )
    query = parse_qs(parts.query)
    subdirectory = unquote(query["subdirectory"][0]) if "subdirectory" in query else None
    if subdirectory is not None:
        path = PurePosixPath(subdirectory)
        if path.is_absolute() or ".." in path.parts:
            raise LambdaBuildError(f"{where}: git source {text!r} has a subdirectory outside the repository")
    ref = next((f"{kind} {query[kind][0]}" for kind in ("tag", "branch", "rev") if kind in query), None)
    url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return GitSource(url=url, commit=commit, subdirectory=subdirectory, ref=ref)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",  # never wait for a password
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_ADVICE": "0",
    }
    try:
        return subprocess.run(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd, capture_output=True,
                              text=True, env=environment, timeout=GIT_TIMEOUT)
    except FileNotFoundError:
        raise LambdaBuildError(
            "the lock has a git source, but the git command is not installed",
            "install git, or depend on a published release instead of the repository",
        ) from None
    except subprocess.TimeoutExpired:
        raise LambdaBuildError(f"git {' '.join(args[:2])} took longer than {GIT_TIMEOUT} s") from None


def _tail(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def checkout(source: GitSource, directory: Path, name: str) -> Path:
    """Fetch exactly ``source.commit`` into ``directory``; the tree to build (its subdirectory)."""
    directory.mkdir(parents=True, exist_ok=True)
    init = _git(["init", "-q", str(directory)], directory)
    if init.returncode != 0:
        raise LambdaBuildError(f"{name}: git init failed: {_tail(init)}")
    fetched = _git(["fetch", "-q", "--depth", "1", source.url, source.commit], directory)
    if fetched.returncode != 0:
        # Servers that do not hand out a commit by name: everything, then the commit from it.
        fetched = _git(["fetch", "-q", "--tags", source.url, "+refs/heads/*:refs/remotes/origin/*"], directory)
        if fetched.returncode != 0:
            raise LambdaBuildError(
                f"{name}: fetching {source.url} failed: {_tail(fetched)}",
                "check the URL, the network and your git credentials (a credential helper or ~/.netrc)",
            )
    checked = _git(["checkout", "-q", "--detach", source.commit], directory)
    head = _git(["rev-parse", "HEAD"], directory)
    if checked.returncode != 0 or head.stdout.strip() != source.commit:
        pinned_by = f" by {source.ref}" if source.ref else ""
        raise LambdaBuildError(
            f"{name}: {source.url} has no commit {source.commit} (the lock pins it{pinned_by})",
            "the commit may have been removed by a force-push; run `uv lock --upgrade-package "
            f"{name}` and review the change",
        )
    tree = directory / source.subdirectory if source.subdirectory else directory
    if source.subdirectory and not inside(directory, tree):
        raise LambdaBuildError(
            f"{name}: {source.label}: the subdirectory {source.subdirectory!r} leads outside the checkout "
            "(through a link in the repository)",
            "depend on a release of the package instead, or point the subdirectory at a real directory",
        )
    if not (tree / "pyproject.toml").is_file() and not (tree / "setup.py").is_file():
        raise LambdaBuildError(
            f"{name}: {source.label} has no pyproject.toml or setup.py"
            + (f" in {source.subdirectory}" if source.subdirectory else ""),
            "check the subdirectory in [tool.uv.sources] and run `uv lock`",
        )
    return tree


def git_key(source: GitSource) -> str:
    return key_of({"kind": "git", "url": source.url, "commit": source.commit, "subdirectory": source.subdirectory})


def built_wheel(
    source: GitSource, name: str, cache: Path, work: Path, build: Callable[[Path, Path, str], Path], log: Log
) -> Path:
    """The wheel built from ``source``: from the cache, or checked out, built and stored there."""

    def make(temporary: Path) -> None:
        log(f"  {name}: fetching {source.label}")
        scratch = Path(tempfile.mkdtemp(prefix="git-", dir=work))
        try:
            tree = checkout(source, scratch / "checkout", name)
            store_wheel(build(tree, scratch / "wheel", f"{name} (git {source.label})"))(temporary)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    work.mkdir(parents=True, exist_ok=True)
    return Entry(cache, "git", git_key(source), WHEEL_META).get(read_wheel, make)
