"""Local source trees (workspace members, path and directory sources) copied before a build backend sees them.

A build backend writes into the tree it builds: setuptools leaves ``build/``
and ``<name>.egg-info/`` there, a version plugin may write a version file. So
a tree is never built (or asked for its metadata) where it is: it is copied
into the build's scratch directory (or the cache) and the backend runs on the
copy, leaving the user's tree as it was, byte for byte and time for time.

What is copied: every regular file (mode and modification time kept) and every
link to a place inside the tree (as a link). Left out: version-control
directories (``.git``, ``.hg``, ``.svn``), virtual environments (``.venv``, any
directory holding ``pyvenv.cfg``), ``node_modules``, ``__pycache__``,
``*.egg-info``, tool caches (``.tox``, ``.nox``, ``.mypy_cache``,
``.pytest_cache``, ``.ruff_cache``), hatch-lambda's own output directories (a
``manifest.json`` it wrote) and scratch directories, the directories a caller
names (the build's output and cache), and ``build``, ``dist`` and ``venv`` at
the top of the tree only (below it they may be packages). A link out of the
tree to a regular file (a member's ``README.md -> ../../README.md``) is copied
as that file, since reading it writes nothing; a link out of the tree to a
directory is left out, never followed, and named if the build then fails.

The version-control history a version plugin reads (setuptools-scm,
hatch-vcs, uv-dynamic-versioning) is offered read-only: see
:mod:`hatch_lambda.lockfile.gitview`.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.lockfile.gitview import git_environment, offer_history
from hatch_lambda.scratch import PREFIX as SCRATCH_PREFIX
from hatch_lambda.scratch import holds_build_output

#: Left out wherever they are, whatever they are (a worktree's ``.git`` is a file).
VCS = frozenset({".git", ".hg", ".svn"})
#: Directories left out wherever they are.
SKIP_ANYWHERE = frozenset({".venv", "node_modules", "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
                           ".ruff_cache"})
#: Directories left out at the top of the tree only: below it they may be packages (``src/pkg/build``).
SKIP_AT_TOP = frozenset({"build", "dist", "venv"})


@dataclass(frozen=True)
class TreeCopy:
    """A copy of a local source tree, ready to be built."""

    source: Path  # the user's tree, links resolved
    tree: Path  # its copy
    environment: dict[str, str]  # set for the build of the copy: git kept to the copy (see gitview)
    left_out: tuple[str, ...] = ()  # "src/pkg/shared -> /elsewhere": links out of the tree not reproduced
    history: str = ""  # how the version-control history is offered, for the build's log ("" : not at all)

    def failure_note(self) -> str:
        """What to add to the message of a failed build of the copy."""
        if not self.left_out:
            return ""
        return (f"\n    the copy it was built from left out these links out of {self.source} (they point outside "
                f"it, and not to a file): {', '.join(self.left_out)}")


@dataclass
class _Walk:
    root: Path  # the source tree, resolved
    what: str  # names the tree in messages
    keep_out: frozenset[str]
    faithful: set[str] = field(default_factory=set)  # paths (from the root) copied exactly as they are
    left_out: list[str] = field(default_factory=list)


def copy_source(source: Path, into: Path, what: str, *, keep_out: Iterable[Path] = ()) -> TreeCopy:
    """Copy the tree ``source`` into the empty directory ``into`` (created if need be); the copy, and how to
    build it.

    ``what`` names the tree in messages (``lib (directory ../lib)``); nothing below
    ``keep_out`` is copied. A file or directory that cannot be read is one error
    naming it.
    """
    root = source.resolve()
    if not root.is_dir():
        raise LambdaBuildError(f"{what}: {source} is not a directory", "run `uv lock`, or restore the directory")
    into.mkdir(parents=True, exist_ok=True)
    history = offer_history(root, into)
    tree = into / history.relative
    walk = _Walk(root, what, frozenset(os.path.realpath(path) for path in keep_out))
    tree.mkdir(parents=True, exist_ok=True)
    _copy_directory(walk, root, tree, "")
    note = history.finish(walk.faithful)
    return TreeCopy(root, tree, git_environment(into), tuple(walk.left_out), note)


def _unreadable(walk: _Walk, path: Path, exc: OSError) -> LambdaBuildError:
    return LambdaBuildError(
        f"{walk.what}: {path} cannot be read ({exc.strerror or exc}), so {walk.root} cannot be copied to be built "
        "(a local source is built from a copy, so the build writes nothing into it)",
        f"make it readable (chmod u+r), or move it out of {walk.root}",
    )


def _left_out_directory(walk: _Walk, path: str, name: str, top: bool) -> bool:
    if name in SKIP_ANYWHERE or name.endswith(".egg-info") or name.startswith(SCRATCH_PREFIX):
        return True
    if top and name in SKIP_AT_TOP:
        return True
    return (os.path.isfile(os.path.join(path, "pyvenv.cfg")) or holds_build_output(path)
            or os.path.realpath(path) in walk.keep_out)


def _copy_directory(walk: _Walk, source: Path, copy: Path, relative: str) -> None:
    try:
        with os.scandir(source) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as exc:
        raise _unreadable(walk, source, exc) from None
    for entry in entries:
        name = entry.name
        inner = f"{relative}{name}"
        if name in VCS or name.endswith(".egg-info"):
            continue
        try:
            if entry.is_symlink():
                _copy_link(walk, Path(entry.path), copy / name, inner)
            elif entry.is_dir(follow_symlinks=False):
                if not _left_out_directory(walk, entry.path, name, top=not relative):
                    (copy / name).mkdir()
                    _copy_directory(walk, Path(entry.path), copy / name, inner + "/")
            elif entry.is_file(follow_symlinks=False):
                shutil.copy2(entry.path, copy / name, follow_symlinks=False)
                walk.faithful.add(inner)
            # sockets, pipes and devices are not sources: left out
        except LambdaBuildError:
            raise
        except OSError as exc:
            raise _unreadable(walk, Path(entry.path), exc) from None


def _copy_link(walk: _Walk, link: Path, copy: Path, relative: str) -> None:
    target = os.readlink(link)
    real = os.path.realpath(link)
    if real == str(walk.root) or real.startswith(str(walk.root) + os.sep):
        # Inside the tree: a link again, made relative so that it points inside the copy.
        inside = os.path.relpath(real, os.path.join(walk.root, os.path.dirname(relative)))
        os.symlink(inside, copy)
        if inside == target:
            walk.faithful.add(relative)
        return
    try:
        mode = os.stat(real).st_mode
    except OSError:
        mode = 0
    if stat.S_ISREG(mode):  # reading one file through a link writes nothing: copied as the file
        shutil.copy2(real, copy)
    else:
        walk.left_out.append(f"{relative} -> {target}")
