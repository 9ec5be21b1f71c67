"""The git history of a copied source tree, offered read-only, so a version plugin reads the version it would in place.

setuptools-scm, hatch-vcs, uv-dynamic-versioning and their kind run ``git``
in the tree being built to find its version (and setuptools-scm which files
are tracked). A copy of the tree (see :mod:`hatch_lambda.lockfile.trees`) has
no repository, and ``git`` run there must never reach the user's: it could
rewrite their index. So the copy is laid out as the repository is (the tree
at the same path below the copy's root as below the repository's top) and the
copy's root gets a small ``.git`` of its own: ``HEAD``, the refs, the index
and ``info/exclude`` copied, the repository format, and the objects read
through ``objects/info/alternates``, which git never writes to. Index entries
the copy does not hold as they are (everything outside the tree, directories
left out of the copy) are marked skip-worktree, so ``git status`` and
``git describe --dirty`` see the tree as clean or dirty as the user's is. The
``.gitignore`` files between the repository's top and the tree are copied too
(hatchling reads the nearest one up to the repository's top).
``GIT_CEILING_DIRECTORIES`` keeps ``git`` from looking above the copy.

When the tree is in no repository, or git is missing, or this fails, the
copy's root gets an empty ``.git`` directory: hatchling stops looking for a
``.gitignore`` there, and a version plugin finds no history, as it would not
in place either (or fails with its own message).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Variables that point git at a repository other than the one it finds.
REPOSITORY_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
                        "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE")
#: Configuration every git run on a copy gets: no file-system monitor daemon started for it.
OVERRIDES = (("core.fsmonitor", "false"),)
#: Configuration of the user's repository the copy keeps: what git needs to read its objects and refs.
KEPT_CONFIG = ("core.repositoryformatversion", "extensions.objectformat", "extensions.refstorage",
               "extensions.compatobjectformat")


@dataclass(frozen=True)
class Repository:
    top: Path  # the work tree's top directory
    gitdir: Path  # its git directory (a linked worktree's or a submodule's own)
    common: Path  # where its objects and refs are (the main git directory of a linked worktree)


def find_repository(tree: Path) -> Repository | None:
    """The git repository whose work tree holds ``tree`` (resolved), read from the files alone."""
    for directory in (tree, *tree.parents):
        marker = directory / ".git"
        try:
            if marker.is_dir():
                gitdir = marker
            elif marker.is_file():
                line = marker.read_text(encoding="utf-8", errors="replace").strip()
                if not line.startswith("gitdir:"):
                    return None
                gitdir = (directory / line[len("gitdir:"):].strip()).resolve()
            else:
                continue
            if not (gitdir / "HEAD").is_file():
                return None
            common = gitdir
            if (gitdir / "commondir").is_file():
                common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
            return Repository(directory, gitdir, common)
        except OSError:
            return None
    return None


def git_environment(root: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (the process's by default) for git run in a copy whose root is ``root``: it finds no
    repository above the copy, none the variables would point it at, and starts no monitor."""
    env = dict(os.environ if environ is None else environ)
    for name in REPOSITORY_VARIABLES:
        env.pop(name, None)
    ceiling = env.get("GIT_CEILING_DIRECTORIES", "")
    env["GIT_CEILING_DIRECTORIES"] = str(root.resolve().parent) + (os.pathsep + ceiling if ceiling else "")
    try:
        count = int(env.get("GIT_CONFIG_COUNT", "0") or "0")
    except ValueError:
        count = 0
    for key, value in OVERRIDES:
        env[f"GIT_CONFIG_KEY_{count}"], env[f"GIT_CONFIG_VALUE_{count}"] = key, value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)
    return env


@dataclass(frozen=True)
class History:
    """Where the copy of a tree goes below the copy's root, and how to finish offering its history."""

    relative: Path
    finish: Callable[[set[str]], str]  # called with the paths copied as they are; says what was offered


def offer_history(tree: Path, root: Path) -> History:
    """Lay the copy of ``tree`` out below ``root`` as the repository holding it is; ``finish`` then makes
    ``root/.git`` once the tree is copied."""
    repository = find_repository(tree)
    if repository is None or shutil.which("git") is None:
        return History(Path(tree.name), lambda faithful: _no_history(root))
    relative = tree.relative_to(repository.top)
    prefix = "" if relative == Path(".") else relative.as_posix() + "/"
    ignores = set()
    for directory in reversed(tree.parents):  # the .gitignore files between the repository's top and the tree
        if directory.is_relative_to(repository.top):
            ignore = directory / ".gitignore"
            if ignore.is_file() and not ignore.is_symlink():
                into = root / directory.relative_to(repository.top)
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ignore, into / ".gitignore")
                ignores.add((into / ".gitignore").relative_to(root).as_posix())

    def finish(faithful: set[str]) -> str:
        copied = ignores | {prefix + path for path in faithful}
        try:
            _view(repository, root, copied)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            shutil.rmtree(root / ".git", ignore_errors=True)
            _no_history(root)
            return f"its git history could not be offered to the build ({exc}), so it has none"
        return f"git history of {repository.top} offered read-only"

    return History(relative, finish)


def _no_history(root: Path) -> str:
    (root / ".git").mkdir(exist_ok=True)
    return ""


def _git(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["git", *args], cwd=root, input=stdin, capture_output=True, env=git_environment(root),
                            timeout=300)
    if result.returncode != 0:
        raise ValueError(f"git {args[0]}: {result.stderr.decode(errors='replace').strip()[-300:]}")
    return result.stdout


def _view(repository: Repository, root: Path, copied: set[str]) -> None:
    """``root/.git``: the history of ``repository`` read-only, the index entries ``copied`` does not name
    marked skip-worktree."""
    shell = root / ".git"
    (shell / "objects" / "info").mkdir(parents=True)
    (shell / "objects" / "info" / "alternates").write_text(str((repository.common / "objects").resolve()) + "\n")
    shutil.copy2(repository.gitdir / "HEAD", shell / "HEAD")
    for name in ("packed-refs", "shallow", "info/exclude"):
        if (repository.common / name).is_file():
            (shell / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repository.common / name, shell / name)
    for name in ("refs", "reftable"):
        if (repository.common / name).is_dir():
            shutil.copytree(repository.common / name, shell / name, symlinks=True)
    (shell / "refs").mkdir(exist_ok=True)
    for index in [repository.gitdir / "index", *repository.gitdir.glob("sharedindex.*")]:
        if index.is_file():
            shutil.copy2(index, shell / index.name)
    listed = subprocess.run(["git", "config", "--file", str(repository.common / "config"), "--list"],
                            capture_output=True, text=True, env=git_environment(root), timeout=60)
    kept = dict(line.split("=", 1) for line in listed.stdout.splitlines() if line.split("=", 1)[0] in KEPT_CONFIG)
    lines = ["[core]", f"\trepositoryformatversion = {kept.pop('core.repositoryformatversion', '0')}",
             "\tbare = false"]
    if kept:
        lines += ["[extensions]", *(f"\t{key.split('.', 1)[1]} = {value}" for key, value in kept.items())]
    (shell / "config").write_text("\n".join(lines) + "\n")
    if not (shell / "index").is_file():
        return
    marked = []
    for record in _git(root, "ls-files", "--stage", "-z").split(b"\0"):
        if not record:
            continue
        info, _, path = record.partition(b"\t")
        mode, _, stage = info.split(b" ")
        name = path.decode("utf-8", "surrogateescape")
        if stage == b"0" and (mode == b"160000" or name not in copied):
            marked.append(path)
    if marked:
        _git(root, "update-index", "--skip-worktree", "-z", "--stdin", stdin=b"\0".join(marked) + b"\0")
