"""A function's files kept to the project: no link out of it, no build output, nothing but regular files.

hatch's wheel target selects files by walking the project and following
symbolic links, so ``src/app/config.txt -> ~/.aws/credentials`` (or a link to
a whole directory) would put what it points to into the function's zip. A file
whose real path is outside the project is refused, naming the link on its path
and where it points; a link that stays inside the project ships what it points
to. Files under the output directories (the zips of earlier builds, and the
scratch directories beside them) are left out, so a broad selection
(``packages = ["."]``) does not grow with every build; so are those under any
directory below the project that holds a ``manifest.json`` a build wrote
(:func:`hatch_lambda.scratch.holds_build_output`: its format and a target's artifacts in
it), such as ``out1/`` of an earlier ``-d out1`` build, whichever directory
this build writes to. Each directory is looked at once per function. A file
hatch's ``force-include`` names outside the project is shipped: it was asked
for by its path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from hatch_lambda.errors import LambdaBuildError
from hatch_lambda.packs.deflate import Entry
from hatch_lambda.scratch import holds_build_output


def confined(entries: Iterable[Entry], function: str, roots: Iterable[Path], outputs: Iterable[Path]) -> list[Entry]:
    """``entries`` less those under ``outputs``; a LambdaBuildError for one that leaves every root.

    ``roots``: the directories the function's code may come from (the project
    built, and the workspace member the function is). ``outputs``: the output
    directories, whatever their contents; any other directory below a root that
    holds a manifest.json a build wrote is left out too.
    """
    bounds = [Path(os.path.abspath(root)) for root in roots]
    real_bounds = [root.resolve() for root in bounds]
    skipped = [Path(os.path.abspath(out)) for out in outputs]
    skipped += [out.resolve() for out in skipped]
    earlier = _EarlierOutputs(bounds + real_bounds)
    kept = []
    for entry in entries:
        path = Path(os.path.abspath(entry.source))
        inside = [root for root in bounds if path.is_relative_to(root)]
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # a dangling link, or a loop of links
            root = inside[0] if inside else path.parent
            link = _culprit(path, root, lambda link: not _resolves(link))
            raise LambdaBuildError(
                f"function {function!r}: {_link_named(path, root, link)}, which leads to no file (nothing is "
                "there, or the links go round in a loop)",
                "remove the link, or point it at a file inside the project",
            ) from None
        if any(path.is_relative_to(out) or real.is_relative_to(out) for out in skipped):
            continue  # build output: never function code
        if earlier.holds(path) or earlier.holds(real):
            continue  # an earlier build's output directory (another -d)
        if inside and not _within(real, real_bounds):
            root = inside[0]
            link = _culprit(path, root, lambda link: not _within(link.resolve(), real_bounds))
            raise LambdaBuildError(
                f"function {function!r}: {_link_named(path, root, link)}, outside the project ({root}); "
                "hatch-lambda does not ship files from outside the project",
                f"replace the link with a copy of what it points to, or leave it out of the function's files "
                f"(exclude = [\"{_relative(link, root)}\"])",
            )
        mode = real.stat().st_mode
        if not stat.S_ISREG(mode):
            shown = _relative(path, inside[0]) if inside else str(path)
            raise LambdaBuildError(
                f"function {function!r}: {shown} is not a regular file ({_kind(mode)}), which a zip cannot hold",
                f"remove it from the project, or leave it out of the function's files (exclude = [\"{shown}\"])",
            )
        kept.append(entry)
    return kept


class _EarlierOutputs:
    """Directories below ``roots`` that hold a manifest.json a build wrote; each directory read once."""

    def __init__(self, roots: list[Path]) -> None:
        self._roots = roots
        self._known: dict[Path, bool] = {}

    def holds(self, path: Path) -> bool:
        """Whether a directory between ``path`` and the root it is in (the root itself not) is one."""
        root = max((root for root in self._roots if path.is_relative_to(root)), key=lambda r: len(r.parts),
                   default=None)
        if root is None:
            return False
        return any(self._is_output(directory) for directory in path.parents
                   if directory != root and directory.is_relative_to(root))

    def _is_output(self, directory: Path) -> bool:
        known = self._known.get(directory)
        if known is None:
            known = self._known[directory] = holds_build_output(directory)
        return known


def _culprit(path: Path, root: Path, bad: Callable[[Path], bool]) -> Path:
    """The first symbolic link on ``path`` below ``root`` (the file itself, or a directory above it) for which
    ``bad`` holds; ``path`` when there is none."""
    current = root
    for part in path.relative_to(root).parts:
        current = current / part
        if current.is_symlink() and bad(current):
            return current
    return path


def _link_named(path: Path, root: Path, link: Path) -> str:
    """``a/b is a symbolic link to target``, and what ``path`` is when ``link`` is a directory above it."""
    if not link.is_symlink():  # no link of ours: a directory above the root leads elsewhere
        return f"{_relative(path, root)} resolves to {path.resolve()}"
    target = os.readlink(link)
    where = Path(os.path.abspath(link.parent / target))
    shown = f"{_relative(link, root)} is a symbolic link to {target}"
    if str(where) != target:
        shown += f" ({where})"
    if link != path:
        shown += f" (a directory; {_relative(path, root)} is a file in it)"
    return shown


def _within(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def _resolves(path: Path) -> bool:
    try:
        path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return True


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"
